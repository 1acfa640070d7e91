import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { Redis, type Result } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { BatonError } from '@baton/tokens'

const SCRIPTS = {
  batonCreateSession: { file: 'create-session.lua', keys: 2 },
  batonRotateRefresh: { file: 'rotate-refresh.lua', keys: 2 },
  batonRevokeSession: { file: 'revoke-session.lua', keys: 2 },
  batonRevokeUserSessions: { file: 'revoke-user-sessions.lua', keys: 1 },
  batonListSessions: { file: 'list-sessions.lua', keys: 1 },
  batonChangePassword: { file: 'change-password.lua', keys: 1 },
  batonTokenStatus: { file: 'token-status.lua', keys: 2 },
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
    batonRateLimit: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[number, number], Context>
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
  }
}

const LUA_DIR = new URL('../../lua/', import.meta.url)

/** Registers every Lua script once; ioredis sends EVALSHA and falls back to EVAL after a restart. */
export function defineScripts (client: Redis): void {
  for (const [name, { file, keys }] of Object.entries(SCRIPTS)) {
    if (name in client) continue
    client.defineCommand(name, { numberOfKeys: keys, lua: readFileSync(new URL(file, LUA_DIR), 'utf8') })
  }
}

// Replies that mean "Redis cannot take this write now", not "the request is wrong".
const TRANSIENT_REPLY = /^(READONLY|LOADING|OOM|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF)\b/

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
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000),
    // Commands issued in one tick share one socket write: under load a write per command cost more than the script.
    enableAutoPipelining: true
  })
  defineScripts(client)
  app.decorate('redis', client)

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
    await client.ping()
    return undefined
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
