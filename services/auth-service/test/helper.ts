import { spawn } from 'node:child_process'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import tap, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { isClusterClient, type RedisClient } from '@baton/service-kit'
import { startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from '@baton/test-redis'
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
  /** The test's own client on the same Redis: a Cluster client on a cluster. */
  redis: RedisClient
  backend: TestBackend
  clock: TestClock
  prefix: string
  /** Every log line the app wrote, raw. */
  logs: () => string
}

/** Starts a server (or cluster) on the first call in a test file and stops it when the file ends. */
function perFile<T extends { stop: () => Promise<void> }> (start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined
  return async () => {
    if (started === undefined) {
      started = start()
      tap.teardown(async () => { await (await started!).stop() })
    }
    return await started
  }
}

/** One private redis-server per test file, stopped when the file ends. */
export const sharedRedis = perFile(async () => await startRedis())

/** The Redis a test file runs on: one server, or a Redis Cluster of 3 masters and 3 replicas. */
export type TestBackend =
  | { kind: 'standalone', server: TestRedis, env: { REDIS_URL: string } }
  | { kind: 'cluster', cluster: TestRedisCluster, env: { REDIS_CLUSTER_NODES: string } }

export type TestBackendKind = TestBackend['kind']

/** `BATON_TEST_REDIS=cluster pnpm test` runs every test built on `setup()` on a Redis Cluster. */
export const DEFAULT_BACKEND: TestBackendKind = process.env.BATON_TEST_REDIS === 'cluster' ? 'cluster' : 'standalone'

/** One private Redis Cluster (3 masters, 3 replicas) per test file, stopped when the file ends. */
export const sharedCluster = perFile(async () => await startRedisCluster())

export async function sharedBackend (kind: TestBackendKind = DEFAULT_BACKEND): Promise<TestBackend> {
  if (kind === 'cluster') {
    const started = await sharedCluster()
    return { kind, cluster: started, env: { REDIS_CLUSTER_NODES: started.seeds } }
  }
  const server = await sharedRedis()
  return { kind, server, env: { REDIS_URL: server.url } }
}

/** A plain client for a test to look at (and tamper with) what the service stored. */
export function testClient (backend: TestBackend): RedisClient {
  const client = backend.kind === 'cluster'
    ? new Cluster(backend.cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    : new Redis(backend.server.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  // Tests that stop the server on purpose would otherwise print every reconnect failure.
  client.on('error', () => {})
  return client
}

let counter = 0

/**
 * Builds an auth-service on the file's private Redis, under a key prefix of
 * its own so tests in one file never see each other's data.
 */
export async function setup (t: Test, env: Record<string, string> = {}, options: { clock?: TestClock, backend?: TestBackendKind } = {}): Promise<TestContext> {
  const backend = await sharedBackend(options.backend)
  const prefix = `t${process.pid}-${++counter}:`
  const clock = options.clock ?? testClock()
  // Tests register users from one address freely; the registration budget is tested where it is the subject.
  // A request's Redis calls share one budget of REDIS_COMMAND_TIMEOUT: on a test machine running many
  // suites at once, slow replies must not add up to 503s. Tests of timeouts set their own.
  const config = loadConfig({ ...backend.env, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', RATE_LIMIT_REGISTRATIONS: '1000', REDIS_COMMAND_TIMEOUT: '5000', ...env })
  const stream = new PassThrough()
  let captured = ''
  stream.on('data', (chunk: Buffer) => { captured += chunk.toString() })
  const app = await buildApp(config, { now: clock.now, logStream: stream })
  await app.ready()
  // A cluster client learns the slot map, and the keyring loads, after start-up: wait as a load balancer would.
  if (backend.kind === 'cluster') await untilReady(app)
  const redis = testClient(backend)
  t.teardown(async () => {
    // A failure that happens once in many runs is understood only from what the service logged then.
    if (!t.passing()) for (const line of captured.split('\n')) if (/"level":(50|60)/.test(line)) t.comment(`service log: ${line.slice(0, 4000)}`)
    await app.close()
    redis.disconnect()
  })
  return { app, redis, backend, clock, prefix, logs: () => captured }
}

/**
 * Resolves once `check` holds, polling every 20 ms; throws after `timeoutMs`
 * with `what` and `detail()`. Tests wait for the event this way, never for a
 * fixed time that a loaded machine may overrun.
 */
export async function until (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000, detail: () => Promise<string> | string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms ${await detail()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Resolves once `/readyz` answers 200; throws after `timeoutMs`. */
export async function untilReady (app: FastifyInstance, timeoutMs = 15_000): Promise<void> {
  await until('ready', async () => (await app.inject('/readyz')).statusCode === 200, timeoutMs, async () => (await app.inject('/readyz')).body)
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
  /** Password grant only. */
  device_token?: string
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
export async function keysWithTtl (redis: RedisClient, prefix: string): Promise<Map<string, number>> {
  const result = new Map<string, number>()
  // SCAN sees one server's keys: on a cluster, ask every master.
  for (const node of isClusterClient(redis) ? redis.nodes('master') : [redis]) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const key of keys) result.set(key, await node.pttl(key))
    } while (cursor !== '0')
  }
  return result
}

/** Every string value stored under a prefix: key names, hash fields and values. */
export async function dumpStrings (redis: RedisClient, prefix: string): Promise<string> {
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

/** The operator command line, built (dist/): `pnpm build` first. */
export const ADMIN_CLI = fileURLToPath(new URL('../dist/cli/baton-admin.js', import.meta.url))

/** Runs `baton-admin args…` as its own process with only `env` (and PATH). */
export async function runAdmin (env: Record<string, string>, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [ADMIN_CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}
