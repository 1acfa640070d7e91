import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { ChainableCommander, Result } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { BatonError } from '@baton/tokens'
import { createRedisClient, histogram, isClusterClient, labelled, type RedisClient, type RedisTarget } from '@baton/service-kit'
import { defineLuaScripts, scriptName } from '../lua-scripts.js'
import { RedisClock } from '../redis-clock.js'
import { RedisBudget, RedisBudgetSpentError, currentRedisBudget, runWithRedisBudget, withinRedisBudget } from '../redis-budget.js'

const CLOCK_SAMPLE_INTERVAL_MS = 5000

const SCRIPTS = {
  // Any number of keys (the caller passes the count first): they declare the sessions the script may end.
  batonCreateSession: { file: 'create-session.lua', keys: undefined },
  batonRotateRefresh: { file: 'rotate-refresh.lua', keys: 2 },
  batonRevokeSession: { file: 'revoke-session.lua', keys: 2 },
  batonRevokeUserSessions: { file: 'revoke-user-sessions.lua', keys: undefined },
  batonListSessions: { file: 'list-sessions.lua', keys: undefined },
  batonChangePassword: { file: 'change-password.lua', keys: 1 },
  batonClaimUsername: { file: 'claim-username.lua', keys: 1 },
  batonSetUserLock: { file: 'set-user-lock.lua', keys: 1 },
  batonTokenStatus: { file: 'token-status.lua', keys: 2 },
  batonPublishRevocation: { file: 'publish-revocation.lua', keys: 1 },
  // Any number of keys: the caller passes the count first.
  batonRateLimit: { file: 'rate-limit.lua', keys: undefined },
  batonAccountLimit: { file: 'account-limit.lua', keys: 3 }
} as const

type Arg = string | number

declare module 'ioredis' {
  interface RedisCommander<Context> {
    batonCreateSession: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<string[], Context>
    batonRotateRefresh: (session: string, index: string, ...args: Arg[]) => Result<string[], Context>
    batonRevokeSession: (session: string, index: string, sid: string, clientId: string) => Result<number, Context>
    batonRevokeUserSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[]], Context>
    batonListSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[] | string[][]], Context>
    batonChangePassword: (user: string, expectedHash: string, nextHash: string, now: Arg, deadline: Arg) => Result<number, Context>
    batonClaimUsername: (username: string, id: string, deadline: Arg) => Result<number, Context>
    batonSetUserLock: (user: string, action: 'lock' | 'unlock', now: Arg, reason: string) => Result<number, Context>
    batonTokenStatus: (session: string, revokedToken: string, now: Arg, hasSession: '0' | '1') => Result<number, Context>
    batonPublishRevocation: (stream: string, keepMs: Arg, ...fieldsAndValues: Arg[]) => Result<string, Context>
    batonRateLimit: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[number, number, number], Context>
    batonAccountLimit: (unknownFailures: string, clientFailures: string, knownAddress: string, knownDevice: '0' | '1', limit: Arg, windowMs: Arg, deadline: Arg) => Result<[number, number, number], Context>
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
    /**
     * The Redis time (ms) after which a write sent now must not run; scripts that take it refuse later.
     * In a request, the moment its Redis budget runs out; throws the 503 once too little is left to send one.
     */
    redisDeadline: () => number
  }
}

/** Registers every Lua script once; ioredis sends EVALSHA and falls back to EVAL after a restart. */
export function defineScripts (client: RedisClient): void {
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
export function timeCommands (client: RedisClient, observe: (label: string, seconds: number) => void): void {
  // Every argument passes through: a cluster's sendCommand takes the node to use as a third.
  const target = client as unknown as { sendCommand: (command: SentCommand, ...rest: unknown[]) => unknown, [timed]?: true }
  if (target[timed] === true) return
  target[timed] = true
  const send = target.sendCommand.bind(client)
  target.sendCommand = (command, ...rest) => {
    // Before sending: a script's first use on a connection turns EVALSHA into EVAL as it is written.
    const label = command.name === 'evalsha' ? scriptName(command.args[0] as string) ?? 'evalsha' : command.name
    const start = performance.now()
    const result = send(command, ...rest)
    const done = (): void => { observe(label, (performance.now() - start) / 1000) }
    command.promise.then(done, done)
    return result
  }
}

// Replies that mean "Redis cannot take this write now", not "the request is wrong".
// STALE: our own scripts, run after we stopped waiting (see RedisClock).
// MOVED and ASK reach the caller only when a redirect could not be followed
// (a pipeline mid-failover): the slot map is being refreshed.
const TRANSIENT_REPLY = /^(READONLY|LOADING|OOM|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|STALE|MOVED|ASK)\b/

/**
 * Runs a Redis operation and turns any storage failure into a 503 that the
 * client may retry. A programming error (a WRONGTYPE, a script bug) stays a 500.
 * In a request, the wait is bounded by what is left of the request's Redis budget.
 */
export async function storage<T> (operation: Promise<T>): Promise<T> {
  try {
    return await withinRedisBudget(operation)
  } catch (error) {
    const name = (error as Error).name
    const message = (error as Error).message ?? ''
    if (name !== 'ReplyError' || TRANSIENT_REPLY.test(message)) throw unavailable(error)
    throw error
  }
}

function unavailable (cause: unknown): BatonError {
  return new BatonError('BATON_UNAVAILABLE', 'storage is temporarily unavailable', { headers: { 'retry-after': '1' }, cause })
}

/** How many replicas must hold a write before its result counts (0: the master's word is enough). */
export interface Replication {
  replicas: number
  /** How long WAIT may take (ms). */
  timeoutMs: number
}

/**
 * Runs one write through {@link storage}. With `replicas` > 0, a WAIT follows
 * it on the same connection, and the result counts only once that many
 * replicas hold the write: a failover cannot then lose a token a client was
 * given. Fewer in time: 503; the write stays on the master, so a retry finds it.
 */
export async function replicatedWrite<T> (client: RedisClient, replication: Replication, write: (commander: RedisClient | ChainableCommander) => unknown): Promise<T> {
  if (replication.replicas === 0) return await storage(write(client) as Promise<T>)
  // A cluster pipeline sent before the first slot map would wait for one: fail fast instead.
  if (client.status !== 'ready') throw unavailable(new Error(`redis is ${client.status}`))
  const pipeline = client.pipeline()
  write(pipeline)
  pipeline.wait(replication.replicas, replication.timeoutMs)
  const [[error, value] = [], [waitError, acknowledged] = []] = (await storage(pipeline.exec())) ?? []
  if (error != null) await storage(Promise.reject(error))
  if (waitError != null || typeof acknowledged !== 'number' || acknowledged < replication.replicas) {
    throw unavailable(waitError ?? new Error(`the write reached ${String(acknowledged)} of ${replication.replicas} replicas in time`))
  }
  return value as T
}

export interface RedisPluginOptions {
  /** A URL, a cluster's seed nodes or Sentinels (see `readRedisTarget`). */
  target: RedisTarget | string
  commandTimeoutMs: number
  /** A client the caller owns (and closes); the plugin only defines its scripts on it. */
  client?: RedisClient
}

/**
 * The Redis connection (one server, a Sentinel-watched master or a Redis
 * Cluster), set to fail fast by `createRedisClient`. A request that meets
 * Redis down, or a cluster mid-failover, gets a 503 within the timeout, and
 * the service recovers by itself once Redis is back. Each request gets one
 * budget of `commandTimeoutMs` for all its Redis calls (RedisBudget), and its
 * scripts' deadlines are where that budget ends.
 */
export const redisPlugin = fp(async function redis (app: FastifyInstance, opts: RedisPluginOptions) {
  // Auto-pipelining: commands issued in one tick share one socket write; under load a write per command cost more than the script.
  const client = opts.client ?? createRedisClient(opts.target, { commandTimeoutMs: opts.commandTimeoutMs, autoPipelining: true })
  defineScripts(client)
  // A getter: fastify's decorate type distributes over the Redis | Cluster union and refuses a plain value.
  app.decorate('redis', { getter: () => client })
  const clock = new RedisClock(opts.commandTimeoutMs)
  app.decorate('redisDeadline', () => {
    const budget = currentRedisBudget()
    if (budget === undefined) return clock.deadline()
    const left = budget.remainingMs()
    // It could only run too late to be answered in time: not sent at all.
    if (left <= clock.marginMs) throw unavailable(new RedisBudgetSpentError())
    return clock.deadline(left)
  })
  // The rest of the request runs inside: fastify carries the context across body parsing.
  app.addHook('onRequest', (_request, _reply, done) => { runWithRedisBudget(new RedisBudget(opts.commandTimeoutMs), done) })
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
    if (isClusterClient(client)) {
      // A cluster client stays ready while a master is down; the cluster itself knows better. It routes writes to masters itself.
      const info = await client.cluster('INFO')
      const state = /^cluster_state:(\w+)/m.exec(info)?.[1]
      return state === 'ok' ? undefined : `redis cluster is ${state ?? 'unknown'}`
    }
    // A replica answers reads but refuses every write: not ready to serve logins or refreshes.
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
