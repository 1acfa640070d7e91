// The root `pnpm start` (scripts/start.mjs) as a developer runs it: both
// services on one stdout, each line naming the service that wrote it; JSON
// into a pipe, readable lines on a terminal (forced here with LOG_PRETTY=1).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort, startRedis } from '@baton/test-redis'

const START = fileURLToPath(new URL('../../../scripts/start.mjs', import.meta.url))
const TOKEN = 'eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl'
const PASSWORD = 'correct horse battery staple'

// Two services start and stop per test; on a loaded machine that takes a while.
t.setTimeout(300_000)

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs start.mjs until both services are ready, sends them a request carrying secrets, then SIGTERM. */
async function runStart (t: Test, env: Record<string, string>): Promise<Run> {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const [authPort, resourcePort] = [await freePort(), await freePort()]
  const child = spawn(process.execPath, [START], {
    env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, AUTH_PORT: String(authPort), RESOURCE_PORT: String(resourcePort), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const ready = new Promise<boolean>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes('start: ready:')) resolve(true)
    })
    child.once('exit', () => { resolve(false) })
  })
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve))
  if (await ready) {
    const auth = `http://127.0.0.1:${authPort}`
    await fetch(`${auth}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) })
    await fetch(`${auth}/oauth/token?access_token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json', cookie: `session=${TOKEN}` }, body: JSON.stringify({ grant_type: 'password', username: 'ada', password: PASSWORD }) })
    await fetch(`http://127.0.0.1:${resourcePort}/me`, { headers: { authorization: `Bearer ${TOKEN}` } })
    child.kill('SIGTERM')
  }
  return { code: await exited, stdout, stderr }
}

function noSecrets (t: Test, output: string): void {
  t.notOk(output.includes(TOKEN), 'no token in any line')
  t.notOk(output.includes(PASSWORD), 'no password in any line')
}

t.test('into a pipe: every line is JSON and names its service and version', async (t) => {
  const run = await runStart(t, {})
  t.equal(run.code, 0, run.stderr)
  const lines = run.stdout.split('\n').filter((line) => line !== '')
  t.ok(lines.length >= 6, `${lines.length} lines`)
  const parsed = lines.map((line) => JSON.parse(line) as { service?: string, version?: string, msg?: string })
  t.same([...new Set(parsed.map((line) => line.service))].sort(), ['auth-service', 'resource-service'], 'both services, and only they, write')
  t.ok(parsed.every((line) => typeof line.version === 'string' && line.version !== ''), 'every line carries the version')
  t.ok(parsed.some((line) => line.service === 'resource-service' && line.msg === 'request completed'), 'request lines included')
  noSecrets(t, run.stdout)
})

t.test('on a terminal: one readable, coloured line per record, naming the service, still redacted', async (t) => {
  const run = await runStart(t, { LOG_PRETTY: '1' })
  t.equal(run.code, 0, run.stderr)
  const lines = run.stdout.split('\n').filter((line) => line !== '')
  t.ok(lines.length >= 6, `${lines.length} lines`)
  t.notOk(lines.some((line) => line.startsWith('{')), 'no JSON line')
  // eslint-disable-next-line no-control-regex
  const plain = lines.map((line) => line.replace(/\x1b\[[0-9;]*m/g, ''))
  t.ok(lines.some((line) => line.includes('\x1b[')), 'coloured')
  t.ok(plain.every((line) => /^\[\d\d:\d\d:\d\d\.\d{3}\] +[A-Z]+: (auth-service|resource-service): /.test(line)), 'time, level, service and message on every line')
  t.ok(plain.some((line) => line.includes('resource-service: request completed') && line.includes('"statusCode":401')), 'the request lines, fields on the same line')
  t.ok(plain.some((line) => line.includes('auth-service: request completed') && line.includes('access_token=[redacted]')), 'the redacted query string stays redacted')
  noSecrets(t, run.stdout)
})

t.test('a LOG_PRETTY that means nothing: one line, exit 1, nothing started', async (t) => {
  const child = spawn(process.execPath, [START], { env: { PATH: process.env.PATH ?? '', LOG_PRETTY: 'sometimes', REDIS_URL: 'redis://127.0.0.1:1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  t.equal(await new Promise((resolve) => child.once('close', resolve)), 1)
  t.match(stderr, /^start: invalid LOG_PRETTY: sometimes /)
})
