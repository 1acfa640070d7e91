import tap, { type Test } from 'tap'
import { freePort, startRedis, testClock, type TestClock, type TestRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '@baton/auth-service'

export const PASSWORD = 'correct horse battery staple'

/** The auth-service's Fastify instance (the client depends on no Fastify of its own). */
export type AuthApp = Awaited<ReturnType<typeof buildApp>>

// A clock the test moves by hand, shared by the auth-service and the client.
export { testClock, type TestClock }

let redis: Promise<TestRedis> | undefined

/** One private redis-server per test file, stopped when the file ends. */
async function sharedRedis (): Promise<TestRedis> {
  if (redis === undefined) {
    redis = startRedis()
    tap.teardown(async () => { await (await redis!).stop() })
  }
  return await redis
}

let services = 0

/** One sample of a service's `/metrics` at `baseUrl`, read over HTTP: `0` when the series has not appeared yet. */
export async function readMetric (baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const present = (match[2] ?? '').split(',').filter((part) => part !== '')
    if (wanted.every((label) => present.includes(label)) && present.length === wanted.length) return Number(match[3])
  }
  return 0
}

export interface AuthService {
  app: AuthApp
  /** `http://127.0.0.1:<port>`: the issuer and the base URL clients are given. */
  url: string
  /** Registers a user over HTTP; returns the username. */
  register: (username?: string) => Promise<string>
  /** A sample of the auth-service's own `/metrics`, read over HTTP: `0` when the series has not appeared yet. */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
  /** `baton_auth_refreshes_total` by outcome: `rotated`, `grace_retry`, `reuse_detected`, … */
  refreshes: (outcome: string) => Promise<number>
}

/**
 * The auth-service as `server.ts` runs it, on a real socket and a private
 * Redis (its own key prefix), built with `buildApp`. `routes` may add routes
 * before it starts (the browser harness serves its page this way, from the
 * same origin).
 */
export async function startAuthService (t: Test, env: Record<string, string> | ((url: string) => Record<string, string>) = {}, options: { clock?: TestClock, routes?: (app: AuthApp) => void | Promise<void> } = {}): Promise<AuthService> {
  const server = await sharedRedis()
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const config = loadConfig({
    REDIS_URL: server.url,
    REDIS_KEY_PREFIX: `c${process.pid}-${++services}:`,
    ISSUER: url,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_REGISTRATIONS: '1000',
    // Many test suites share two cores: slow Redis replies must not turn into 503s.
    REDIS_COMMAND_TIMEOUT: '5000',
    ...(typeof env === 'function' ? env(url) : env)
  })
  const app = await buildApp(config, options.clock === undefined ? {} : { now: options.clock.now })
  await options.routes?.(app)
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port })

  let users = 0
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => await readMetric(url, name, labels)
  return {
    app,
    url,
    register: async (username = `user${process.pid}x${++users}`) => {
      const response = await fetch(`${url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) })
      if (response.status !== 201) throw new Error(`register ${username}: ${response.status} ${await response.text()}`)
      return username
    },
    metric,
    refreshes: async (outcome) => await metric('baton_auth_refreshes_total', { outcome })
  }
}
