import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { sharedRedis, until } from './helper.js'

const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url))

// Whatever a failing test leaves running is killed when the file ends: no stray service outlives the suite.
const children = new Set<ReturnType<typeof spawn>>()
t.teardown(() => { for (const child of children) child.kill('SIGKILL') })

function run (env: Record<string, string>): { exited: Promise<{ code: number | null, stderr: string, stdout: string }>, kill: (signal: NodeJS.Signals) => void, logged: (pattern: RegExp, times?: number) => Promise<void> } {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.once('exit', () => { children.delete(child) })
  let stderr = ''
  let stdout = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  return {
    // 'close', not 'exit': stdout is read to its end, every line the process wrote.
    exited: new Promise((resolve) => child.once('close', (code) => { resolve({ code, stderr, stdout }) })),
    kill: (signal) => child.kill(signal),
    logged: async (pattern, times = 1) => {
      const global = new RegExp(pattern.source, 'g')
      await until(`the service logged ${pattern.source} ${times} times`, () => (stdout.match(global)?.length ?? 0) >= times, 30_000)
    }
  }
}

t.test('a bad setting stops start-up with one line naming it', async (t) => {
  const { code, stderr } = await run({ ACCESS_TOKEN_TTL: 'forever' }).exited
  t.equal(code, 1)
  t.equal(stderr.trim().split('\n').length, 1)
  t.match(stderr, /^auth-service: invalid configuration: ACCESS_TOKEN_TTL /)
})

t.test('SIGTERM: finishes in-flight requests, closes Redis, exits 0', async (t) => {
  const redis = await sharedRedis()
  const server = await started({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'server-test:' })
  const base = server.base
  // A registration spends ~50 ms hashing: it is in flight when the signal lands.
  const inFlight = fetch(`${base}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'sigterm', password: 'correct horse battery' }) })
  await server.logged(/"url":"\/users"[^\n]*"msg":"incoming request"/)
  server.kill('SIGTERM')
  const response = await inFlight
  t.equal(response.status, 201, `the in-flight request completed: ${await response.text()}`)
  const { code } = await server.exited
  t.equal(code, 0)
})

async function started (env: Record<string, string>): Promise<ReturnType<typeof run> & { base: string }> {
  const port = await freePort()
  // debug: the tests wait for a request's arrival line, which is logged at debug.
  const server = run({ PORT: String(port), LOG_LEVEL: 'debug', ...env })
  const base = `http://127.0.0.1:${port}`
  // A process starting on a loaded machine: as long as it takes, within tap's file timeout.
  await until('the service came up', async () => await fetch(`${base}/readyz`).then((response) => response.ok, () => false), 60_000)
  return { ...server, base }
}

const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

t.test('SIGTERM with logins in flight: each completes with 200, new connections are refused', async (t) => {
  const redis = await sharedRedis()
  const server = await started({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'sigterm-logins:' })
  const password = 'correct horse battery'
  t.equal((await fetch(`${server.base}/users`, json({ username: 'slowpoke', password }))).status, 201)
  const logins = Array.from({ length: 6 }, async () => await fetch(`${server.base}/oauth/token`, json({ grant_type: 'password', username: 'slowpoke', password })))
  // All six accepted and hashing when the signal lands.
  await server.logged(/"url":"\/oauth\/token"[^\n]*"msg":"incoming request"/, 6)
  server.kill('SIGTERM')
  const responses = await Promise.all(logins)
  t.same(responses.map((response) => response.status), [200, 200, 200, 200, 200, 200], 'every login in flight finished')
  for (const response of responses) t.type((await response.json()).refresh_token, 'string')
  t.equal((await server.exited).code, 0)
  await t.rejects(fetch(`${server.base}/healthz`), 'nothing listens any more')
})

t.test('SIGTERM amid concurrent refreshes: each rotation completed or left the old token valid', async (t) => {
  const redis = await sharedRedis()
  const prefix = 'sigterm-refresh:'
  // The grace window outlasts the test: a rotation that ran but whose answer was lost is then retried safely.
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, REFRESH_REUSE_GRACE: '60s' }
  const server = await started(env)
  const sessions = 40
  const password = 'correct horse battery'
  t.equal((await fetch(`${server.base}/users`, json({ username: 'tabs', password }))).status, 201)
  const olds: string[] = []
  for (let i = 0; i < sessions; i++) {
    const response = await fetch(`${server.base}/oauth/token`, json({ grant_type: 'password', username: 'tabs', password }))
    olds.push((await response.json()).refresh_token)
  }

  // Refreshes go out in a stream; SIGTERM lands once the first have completed, while the rest are arriving.
  let completedBeforeSignal = 0
  const outcomes = olds.map(async (old, i) => {
    await new Promise((resolve) => setTimeout(resolve, 5 * i))
    try {
      const response = await fetch(`${server.base}/oauth/token`, json({ grant_type: 'refresh_token', refresh_token: old }))
      const body = await response.json().catch(() => ({}))
      if (response.status === 200 && ++completedBeforeSignal === 5) server.kill('SIGTERM')
      return { status: response.status, next: body.refresh_token as string | undefined }
    } catch {
      return { status: 0, next: undefined }
    }
  })
  const results = await Promise.all(outcomes)
  // Not reached unless fewer than five rotations ever completed, which the assertions below report.
  if (completedBeforeSignal < 5) server.kill('SIGTERM')
  t.equal((await server.exited).code, 0, 'exited 0')
  t.ok(results.every(({ status }) => [200, 503, 0].includes(status)), `statuses: ${JSON.stringify(results.map(({ status }) => status))}`)
  t.ok(results.some(({ status }) => status === 200), 'some rotations completed')

  // A fresh instance judges every session by what Redis holds.
  const fresh = await buildApp(loadConfig({ ...env, LOG_LEVEL: 'silent' }))
  t.teardown(async () => { await fresh.close() })
  await fresh.ready()
  let completed = 0
  let keptOld = 0
  for (const [i, { status, next }] of results.entries()) {
    const token = status === 200 ? next! : olds[i]!
    // From the same client instance as the refreshes (fetch says `node`): an answer lost in the shutdown is then a grace retry.
    const check = await fresh.inject({ method: 'POST', url: '/oauth/token', headers: { 'user-agent': 'node' }, payload: { grant_type: 'refresh_token', refresh_token: token } })
    t.equal(check.statusCode, 200, `session ${i}: ${status === 200 ? 'the successor it was given' : 'its old token'} still works`)
    if (status === 200) completed++
    else keptOld++
  }
  t.equal(completed + keptOld, sessions)
  t.comment(`${completed} rotations completed, ${keptOld} refused during shutdown with the old token still valid`)
})

t.test('SIGTERM right after a burst of requests: every answered request has its access line on stdout', async (t) => {
  const redis = await sharedRedis()
  // info: the access lines are written through a buffer, in batches.
  const server = await started({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'sigterm-logs:', LOG_LEVEL: 'info' })
  const count = 300
  const statuses: number[] = []
  for (let i = 0; i < count; i += 20) {
    // Twenty at a time, each naming itself in its User-Agent, which the access line carries.
    statuses.push(...await Promise.all(Array.from({ length: 20 }, async (_, j) => {
      // A path nothing serves: its 404 is an ordinary answer, logged at info like any other.
      const response = await fetch(`${server.base}/burst`, { headers: { 'user-agent': `burst-${i + j}` } })
      await response.arrayBuffer()
      return response.status
    })))
  }
  t.ok(statuses.every((status) => status === 404), 'every request was answered')
  // At once: the last lines are still in the buffer, well within its flush interval.
  server.kill('SIGTERM')
  const { code, stdout } = await server.exited
  t.equal(code, 0)
  const agents = new Set(stdout.split('\n').filter((line) => line.includes('"msg":"request completed"')).map((line) => (JSON.parse(line) as { req: { userAgent?: string } }).req.userAgent))
  const missing = Array.from({ length: count }, (_, i) => `burst-${i}`).filter((agent) => !agents.has(agent))
  t.same(missing, [], 'no access line was lost')
  t.ok(stdout.endsWith('\n'), 'the last line is whole')
})
