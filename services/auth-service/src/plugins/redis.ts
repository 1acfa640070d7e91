import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { ChainableCommander, Result } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { BatonError } from '@baton/tokens'
import { createRedisClient, isClusterClient, type RedisClient, type RedisTarget } from '@baton/service-kit'

const SCRIPTS = {
  // Any number of keys (the caller passes the count first): they declare the sessions the script may end.
  batonCreateSession: { file: 'create-session.lua', keys: undefined },
  batonRotateRefresh: { file: 'rotate-refresh.lua', keys: 2 },
  batonRevokeSession: { file: 'revoke-session.lua', keys: 2 },
  batonRevokeUserSessions: { file: 'revoke-user-sessions.lua', keys: undefined },
  batonListSessions: { file: 'list-sessions.lua', keys: undefined },
  batonChangePassword: { file: 'change-password.lua', keys: 1 },
  batonTokenStatus: { file: 'token-status.lua', keys: 2 },
  // Any number of keys: the caller passes the count first.
  batonRateLimit: { file: 'rate-limit.lua', keys: undefined }
} as const

type Arg = string | number

declare module 'ioredis' {
  interface RedisCommander<Context> {
    batonCreateSession: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<string[], Context>
    batonRotateRefresh: (session: string, index: string, ...args: Arg[]) => Result<string[], Context>
    batonRevokeSession: (session: string, index: string, sid: string, clientId: string) => Result<number, Context>
    batonRevokeUserSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[]], Context>
    batonListSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[] | string[][]], Context>
    batonChangePassword: (user: string, expectedHash: string, nextHash: string, now: Arg) => Result<number, Context>
    batonTokenStatus: (session: string, revokedToken: string, now: Arg, hasSession: '0' | '1') => Result<number, Context>
    batonRateLimit: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[number, number], Context>
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
  }
}

const LUA_DIR = new URL('../../lua/', import.meta.url)

/** Registers every Lua script once; ioredis sends EVALSHA and falls back to EVAL after a restart. */
export function defineScripts (client: RedisClient): void {
  for (const [name, { file, keys }] of Object.entries(SCRIPTS)) {
    if (name in client) continue
    client.defineCommand(name, { numberOfKeys: keys, lua: readFileSync(new URL(file, LUA_DIR), 'utf8') })
  }
}

// Replies that mean "Redis cannot take this write now", not "the request is wrong".
// MOVED and ASK reach the caller only when a redirect could not be followed
// (a pipeline mid-failover): the slot map is being refreshed.
const TRANSIENT_REPLY = /^(READONLY|LOADING|OOM|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|MOVED|ASK)\b/

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
 * the service recovers by itself once Redis is back.
 */
export const redisPlugin = fp(async function redis (app: FastifyInstance, opts: RedisPluginOptions) {
  const client = opts.client ?? createRedisClient(opts.target, { commandTimeoutMs: opts.commandTimeoutMs })
  defineScripts(client)
  // A getter: fastify's decorate type distributes over the Redis | Cluster union and refuses a plain value.
  app.decorate('redis', { getter: () => client })

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
      // A cluster client stays ready while a master is down; the cluster itself knows better.
      const info = await client.cluster('INFO')
      const state = /^cluster_state:(\w+)/m.exec(info)?.[1]
      return state === 'ok' ? undefined : `redis cluster is ${state ?? 'unknown'}`
    }
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
