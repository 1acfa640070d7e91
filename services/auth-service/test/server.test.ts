import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from '@baton/test-redis'
import { sharedRedis } from './helper.js'

const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url))

function run (env: Record<string, string>): { exited: Promise<{ code: number | null, stderr: string }>, kill: (signal: NodeJS.Signals) => void, logged: (pattern: RegExp) => Promise<void> } {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let stdout = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  return {
    exited: new Promise((resolve) => child.once('exit', (code) => { resolve({ code, stderr }) })),
    kill: (signal) => child.kill(signal),
    logged: async (pattern) => {
      while (!pattern.test(stdout)) await new Promise((resolve) => setTimeout(resolve, 2))
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
  const port = await freePort()
  // debug: the arrival of a request is logged only at that level.
  const server = run({ REDIS_URL: redis.url, PORT: String(port), LOG_LEVEL: 'debug', REDIS_KEY_PREFIX: 'server-test:' })
  const base = `http://127.0.0.1:${port}`
  let ready = false
  for (let i = 0; i < 100 && !ready; i++) {
    ready = await fetch(`${base}/readyz`).then((response) => response.ok, () => false)
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(ready, 'the service came up')
  // A registration spends ~50 ms hashing: it is in flight when the signal lands.
  const inFlight = fetch(`${base}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'sigterm', password: 'correct horse battery' }) })
  await server.logged(/"url":"\/users"[^\n]*"msg":"incoming request"/)
  server.kill('SIGTERM')
  const response = await inFlight
  t.equal(response.status, 201, `the in-flight request completed: ${await response.text()}`)
  const { code } = await server.exited
  t.equal(code, 0)
})
