import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import { Redis, type Result } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { BatonError } from '@baton/tokens'
import { histogram, labelled } from '@baton/service-kit'
import { defineLuaScripts, scriptName } from '../lua-scripts.js'
import { RedisClock } from '../redis-clock.js'

const CLOCK_SAMPLE_INTERVAL_MS = 5000

const SCRIPTS = {
  batonCreateSession: { file: 'create-session.lua', keys: 2 },
  batonRotateRefresh: { file: 'rotate-refresh.lua', keys: 2 },
  batonRevokeSession: { file: 'revoke-session.lua', keys: 2 },
  batonRevokeUserSessions: { file: 'revoke-user-sessions.lua', keys: 1 },
  batonListSessions: { file: 'list-sessions.lua', keys: 1 },
  batonChangePassword: { file: 'change-password.lua', keys: 1 },
  batonTokenStatus: { file: 'token-status.lua', keys: 2 },
  batonPublishRevocation: { file: 'publish-revocation.lua', keys: 1 },
  // Any number of keys: the caller passes the count first.
  batonRateLimit: { file: 'rate-limit.lua', keys: undefined }
} as const

type Arg = string | number

declare module 'ioredis' {
  interface RedisCommander<Context> {
    batonCreateSession: (session: string, index: string, ...args: Arg[]) => Result<string[], Context>
    batonRotateRefresh: (session: string, index: string, ...args: Arg[]) => Result<string[], Context>
    batonRevokeSession: (session: string, index: string, sid: string, clientId: string) => Result<number, Context>
    batonRevokeUserSessions: (index: string, sessionPrefix: string, keepSid: string) => Result<string[], Context>
    batonListSessions: (index: string, sessionPrefix: string, now: Arg) => Result<string[][], Context>
    batonChangePassword: (user: string, expectedHash: string, nextHash: string, now: Arg) => Result<number, Context>
    batonTokenStatus: (session: string, revokedToken: string, now: Arg, hasSession: '0' | '1') => Result<number, Context>
    batonPublishRevocation: (stream: string, keepMs: Arg, ...fieldsAndValues: Arg[]) => Result<string, Context>
    batonRateLimit: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[number, number], Context>
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
    /** The Redis time (ms) after which a write sent now must not run; scripts that take it refuse later. */
    redisDeadline: () => number
  }
}

/** Registers every Lua script once; ioredis sends EVALSHA and falls back to EVAL after a restart. */
export function defineScripts (client: Redis): void {
  defineLuaScripts(client, SCRIPTS)
}

interface SentCommand { name: string, args: unknown[], promise: Promise<unknown> }
const timed = Symbol('baton.redis.timed')

/**
 * Observes every command's round trip, success or failure, into `observe`,
 * labelled by command or script name. It wraps the client's `sendCommand`,
 * through which every command, script and retry passes; a client already
 * wrapped (shared by two apps) reports to the first only.
 */
export function timeCommands (client: Redis, observe: (label: string, seconds: number) => void): void {
  const target = client as unknown as { sendCommand: (command: SentCommand, stream?: unknown) => unknown, [timed]?: true }
  if (target[timed] === true) return
  target[timed] = true
  const send = target.sendCommand.bind(client)
  target.sendCommand = (command, stream) => {
    // Before sending: a script's first use on a connection turns EVALSHA into EVAL as it is written.
    const label = command.name === 'evalsha' ? scriptName(command.args[0] as string) ?? 'evalsha' : command.name
    const start = performance.now()
    const result = send(command, stream)
    const done = (): void => { observe(label, (performance.now() - start) / 1000) }
    command.promise.then(done, done)
    return result
  }
}

// Replies that mean "Redis cannot take this write now", not "the request is wrong".
// STALE: our own scripts, run after we stopped waiting (see RedisClock).
const TRANSIENT_REPLY = /^(READONLY|LOADING|OOM|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|STALE)\b/

/**
 * Runs a Redis operation and turns any storage failure into a 503 that the
 * client may retry. A programming error (a WRONGTYPE, a script bug) stays a 500.
 */
export async function storage<T> (operation: Promise<T>): Promise<T> {
  try {
    return await operation
  } catch (error) {
    const name = (error as Error).name
    const message = (error as Error).message ?? ''
    if (name !== 'ReplyError' || TRANSIENT_REPLY.test(message)) {
      throw new BatonError('BATON_UNAVAILABLE', 'storage is temporarily unavailable', { headers: { 'retry-after': '1' }, cause: error })
    }
    throw error
  }
}

export interface RedisPluginOptions {
  url: string
  commandTimeoutMs: number
  /** A client the caller owns (and closes); the plugin only defines its scripts on it. */
  client?: Redis
}

/**
 * The Redis connection, set to fail fast: no offline queue, no silent
 * resends, a command timeout, and a reconnect loop that never gives up.
 * A request that meets Redis down gets a 503 within the timeout, and the
 * service recovers by itself once Redis is back.
 */
export const redisPlugin = fp(async function redis (app: FastifyInstance, opts: RedisPluginOptions) {
  const client = opts.client ?? new Redis(opts.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: Math.max(opts.commandTimeoutMs, 1000),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000)
  })
  defineScripts(client)
  app.decorate('redis', client)
  const clock = new RedisClock(opts.commandTimeoutMs)
  app.decorate('redisDeadline', () => clock.deadline())
  // Measured again on every connection (it may be another server now) and now and then.
  const sampleClock = (): void => { if (client.status === 'ready') clock.sample(client).catch(() => {}) }
  client.on('ready', sampleClock)
  if (client.status === 'ready') sampleClock()
  const clockTimer = setInterval(sampleClock, CLOCK_SAMPLE_INTERVAL_MS).unref()
  app.addHook('onClose', async () => { clearInterval(clockTimer); client.off('ready', sampleClock) })

  if (app.hasDecorator('metrics')) {
    const latency = histogram(app, 'baton_auth_redis_command_duration_seconds', 'Redis round trips as the service sees them, by command or script, failures and timeouts included',
      ['command'], [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
    const byCommand = labelled(latency)
    timeCommands(client, (label, seconds) => { byCommand(label).observe(seconds) })
  }

  let lastErrorLog = 0
  client.on('error', (error: Error) => {
    // Reconnect attempts fail every second while Redis is away: say so, not a flood.
    if (Date.now() - lastErrorLog > 10_000) {
      lastErrorLog = Date.now()
      app.log.warn({ err: { message: error.message, code: (error as NodeJS.ErrnoException).code } }, 'redis unavailable')
    }
  })
  client.on('ready', () => { app.log.info('redis ready') })

  app.addReadinessCheck('redis', async () => {
    if (client.status !== 'ready') return `redis is ${client.status}`
    // A replica answers reads but refuses every write: not ready to serve logins or refreshes.
    // (A cluster client would ask any node; it routes writes to masters itself.)
    if (client.isCluster) return await client.ping() === 'PONG' ? undefined : 'redis did not answer PING'
    const [role] = await client.role() as [string, ...unknown[]]
    return role === 'master' ? undefined : `redis is a read-only ${role}`
  })

  if (opts.client === undefined) {
    // Start even when Redis is down: /readyz says so, requests get 503, and the reconnect loop keeps trying.
    client.connect().catch((error: Error) => { app.log.warn({ err: { message: error.message } }, 'redis not reachable at start') })
    app.addHook('onClose', async () => {
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
      else client.disconnect()
    })
  }
}, { name: 'baton-redis', fastify: '5.x', dependencies: ['baton-health'] })
