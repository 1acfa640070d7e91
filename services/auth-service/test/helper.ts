import { PassThrough } from 'node:stream'
import tap, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { startRedis, type TestRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'

/** A clock the test moves by hand. */
export interface TestClock {
  now: () => number
  advance: (ms: number) => void
}

export function testClock (start = Date.now()): TestClock {
  let current = start
  return { now: () => current, advance: (ms) => { current += ms } }
}

export interface TestContext {
  app: FastifyInstance
  redis: Redis
  server: TestRedis
  clock: TestClock
  prefix: string
  /** Every log line the app wrote, raw. */
  logs: () => string
}

let servers: Promise<TestRedis> | undefined

/** One private redis-server per test file, stopped when the file ends. */
export async function sharedRedis (): Promise<TestRedis> {
  if (servers === undefined) {
    servers = startRedis()
    tap.teardown(async () => { await (await servers!).stop() })
  }
  return await servers
}

let counter = 0

/**
 * Builds an auth-service on the file's private Redis, under a key prefix of
 * its own so tests in one file never see each other's data.
 */
export async function setup (t: Test, env: Record<string, string> = {}, options: { clock?: TestClock, redisUrl?: string, ownClient?: boolean } = {}): Promise<TestContext> {
  const server = await sharedRedis()
  const prefix = `t${process.pid}-${++counter}:`
  const clock = options.clock ?? testClock()
  const config = loadConfig({ REDIS_URL: options.redisUrl ?? server.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', ...env })
  const stream = new PassThrough()
  let captured = ''
  stream.on('data', (chunk: Buffer) => { captured += chunk.toString() })
  const app = await buildApp(config, { now: clock.now, logStream: stream })
  await app.ready()
  const redis = new Redis(options.redisUrl ?? server.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  // Tests that stop the server on purpose would otherwise print every reconnect failure.
  redis.on('error', () => {})
  t.teardown(async () => {
    await app.close()
    redis.disconnect()
  })
  return { app, redis, server, clock, prefix, logs: () => captured }
}

export async function register (app: FastifyInstance, username = `user${++counter}`, password = 'correct horse battery'): Promise<{ id: string, username: string, password: string }> {
  const response = await app.inject({ method: 'POST', url: '/users', payload: { username, password } })
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`)
  return { ...response.json<{ id: string, username: string }>(), password }
}

export interface Tokens {
  access_token: string
  refresh_token: string
  expires_in: number
  token_type: string
  scope: string
}

export async function login (app: FastifyInstance, username: string, password: string, extra: Record<string, string> = {}): Promise<Tokens> {
  const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username, password, ...extra } })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return response.json<Tokens>()
}

export async function refresh (app: FastifyInstance, refreshToken: string, extra: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra } })
}

export function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

/** Decodes a JWT's header and payload without verifying it, to look at what was issued. */
export function decodeJwt (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } {
  const [header = '', payload = ''] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>
  }
}

/** All keys under a prefix, with their TTLs in ms (-1: none). */
export async function keysWithTtl (redis: Redis, prefix: string): Promise<Map<string, number>> {
  const result = new Map<string, number>()
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
    cursor = next
    for (const key of keys) result.set(key, await redis.pttl(key))
  } while (cursor !== '0')
  return result
}

/** Every string value stored under a prefix: key names, hash fields and values. */
export async function dumpStrings (redis: Redis, prefix: string): Promise<string> {
  const parts: string[] = []
  for (const key of (await keysWithTtl(redis, prefix)).keys()) {
    parts.push(key)
    const type = await redis.type(key)
    if (type === 'string') parts.push((await redis.get(key)) ?? '')
    if (type === 'hash') parts.push(...Object.entries(await redis.hgetall(key)).flat())
    if (type === 'zset') parts.push(...await redis.zrange(key, 0, -1))
  }
  return parts.join('\n')
}
