// Both services on real sockets over one private Redis, for the revocation
// feed's tests: the auth-service revokes, the resource-service must refuse.
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { freePort, startRedis, type TestRedis } from '@baton/test-redis'
import { buildApp as buildAuth, loadConfig as loadAuthConfig } from '@baton/auth-service'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../src/app.js'

export const PASSWORD = 'correct horse battery staple'

export interface Tokens { access_token: string, refresh_token: string }

export interface AuthService {
  app: FastifyInstance
  url: string
  post: (path: string, body: Record<string, string | boolean>, bearer?: string) => Promise<Response>
  send: (method: string, path: string, bearer: string) => Promise<Response>
  register: (username: string) => Promise<void>
  login: (username: string, password?: string) => Promise<Tokens>
}

/** A private Redis (stopped with the test) and an auth-service on a real socket. */
export async function startAuth (t: Test, env: Record<string, string> = {}, options: { redis?: TestRedis, now?: () => number } = {}): Promise<AuthService & { redis: TestRedis }> {
  const redis = options.redis ?? await startRedis()
  if (options.redis === undefined) t.teardown(async () => { await redis.stop() })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const app = await buildAuth(loadAuthConfig({
    REDIS_URL: redis.url, LOG_LEVEL: 'silent', ISSUER: url, REFRESH_REUSE_GRACE: '0', ...env
  }), options.now === undefined ? {} : { now: options.now })
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port })

  const post = async (path: string, body: Record<string, string | boolean>, bearer?: string): Promise<Response> => await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
    body: JSON.stringify(body)
  })
  const send = async (method: string, path: string, bearer: string): Promise<Response> =>
    await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${bearer}` } })
  return {
    app,
    url,
    redis,
    post,
    send,
    register: async (username) => {
      const response = await post('/users', { username, password: PASSWORD })
      if (response.status !== 201) throw new Error(`register ${username}: ${response.status}`)
    },
    login: async (username, password = PASSWORD) => {
      const response = await post('/oauth/token', { grant_type: 'password', username, password })
      if (response.status !== 200) throw new Error(`login ${username}: ${response.status}`)
      return await response.json() as Tokens
    }
  }
}

export interface ResourceService {
  app: FastifyInstance
  url: string
  /** GET /me with the token: the status and the challenge. */
  me: (accessToken: string) => Promise<{ status: number, challenge: string | null }>
  /** Resolves once /readyz answers 200. */
  ready: () => Promise<void>
  /** One sample of a metric from /metrics (undefined if absent). */
  metric: (name: string, labels?: string) => Promise<number | undefined>
}

export async function startResource (t: Test, auth: { url: string }, env: Record<string, string> = {}, now?: () => number): Promise<ResourceService> {
  const app = await buildResource(loadResourceConfig({ ISSUER: auth.url, LOG_LEVEL: 'silent', ...env }), now === undefined ? {} : { now })
  t.teardown(async () => { await app.close() })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    app,
    url,
    me: async (accessToken) => {
      const response = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${accessToken}` } })
      await response.arrayBuffer()
      return { status: response.status, challenge: response.headers.get('www-authenticate') }
    },
    ready: async () => {
      if (!await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 10_000)) {
        throw new Error(`the resource-service at ${url} was not ready within 10 s: ${await (await fetch(`${url}/readyz`)).text()}`)
      }
    },
    metric: async (name, labels = '') => {
      const text = await (await fetch(`${url}/metrics`)).text()
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`))
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
}

/** Polls `check` until it holds; false if it never did within `timeoutMs`. */
export async function eventually (check: () => Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A TCP proxy to Redis that a test can cut and restore, as a network between the resource-service and Redis would. */
export interface CuttableLink {
  url: string
  cut: () => Promise<void>
  restore: () => Promise<void>
}

export async function cuttableLink (t: Test, target: { host: string, port: number }): Promise<CuttableLink> {
  const port = await freePort()
  let server: Server | undefined
  const sockets = new Set<Socket>()
  const open = async (): Promise<void> => {
    server = createServer((client) => {
      const upstream = connect(target.port, target.host)
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on('close', () => { sockets.delete(socket) })
        socket.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
  }
  const cut = async (): Promise<void> => {
    const closing = new Promise((resolve) => server?.close(resolve))
    for (const socket of sockets) socket.destroy()
    await closing
    server = undefined
  }
  await open()
  t.teardown(cut)
  return { url: `redis://127.0.0.1:${port}`, cut, restore: open }
}
