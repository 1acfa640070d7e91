#!/usr/bin/env node
// `pnpm chaos`: the whole system under a bounded mixed load while Redis is
// paused (SIGSTOP/SIGCONT), killed (SIGKILL) and restarted from its
// append-only file. It starts everything itself, on free loopback ports:
// a redis-server (appendonly yes, appendfsync everysec), the auth-service
// and the resource-service (node on their dist/, so run `pnpm build` first;
// the root script does).
//
// Each simulated client holds one session and loops: call the API (GET /me
// on the resource-service), refresh, now and then log out and log in again.
// A 503 is retried after its Retry-After with the same token, as a client
// should. At the end it prints requests by endpoint and status, the longest
// stall, and every session found in a wrong state:
//   - a refresh refused (4xx) although the client never ended its session:
//     the outage logged it out, or a rotation it was given was lost;
//   - a session the client revoked that accepts a refresh again;
//   - an API call refused with a token that should be valid;
//   - a 5xx other than 503, or no answer within CHAOS_REQUEST_TIMEOUT_MS (a hang).
// Exit status 1 if there is any; 0 otherwise.
//
// Knobs (environment): CHAOS_CLIENTS (200), CHAOS_USERS (20),
// CHAOS_LOAD_SECONDS (50), CHAOS_THINK_MS (300, the mean pause between a
// client's requests), CHAOS_REQUEST_TIMEOUT_MS (5000).

import { spawn } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, startRedis } from '../packages/test-redis/dist/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const number = (name, fallback) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`chaos: ${name} must be a positive number\n`)
    process.exit(1)
  }
  return value
}
const CLIENTS = number('CHAOS_CLIENTS', 200)
const USERS = Math.min(number('CHAOS_USERS', 20), CLIENTS)
const LOAD_MS = number('CHAOS_LOAD_SECONDS', 50) * 1000
const THINK_MS = number('CHAOS_THINK_MS', 300)
const REQUEST_TIMEOUT_MS = number('CHAOS_REQUEST_TIMEOUT_MS', 5000)
const PASSWORD = 'correct horse battery staple'

const say = (message) => { process.stderr.write(`chaos: ${message}\n`) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const started = Date.now()
const at = () => `${((Date.now() - started) / 1000).toFixed(1)}s`

// --- the system ------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'baton-chaos-'))
const children = []
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
})

async function service (name, port, env) {
  const log = createWriteStream(join(work, `${name}.log`))
  const child = spawn(process.execPath, [join(ROOT, `services/${name}/dist/server.js`)], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout.pipe(log)
  child.stderr.pipe(log)
  children.push(child)
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}); see its log`)
    if (await fetch(`${base}/readyz`).then((response) => response.ok, () => false)) return { base, child }
    await sleep(100)
  }
  throw new Error(`${name} did not become ready`)
}

const redis = await startRedis({ appendonly: true, dir: join(work, 'redis'), extraArgs: ['--appendfsync', 'everysec'] })
const authPort = await freePort()
const auth = await service('auth-service', authPort, {
  REDIS_URL: redis.url,
  ISSUER: `http://127.0.0.1:${authPort}`,
  // Every client shares 127.0.0.1: the per-IP limits would otherwise be the test.
  RATE_LIMIT_IP_ATTEMPTS: '1000000000',
  RATE_LIMIT_IP_FAILURES: '1000000000',
  RATE_LIMIT_REGISTRATIONS: '1000000000'
})
const resource = await service('resource-service', await freePort(), {
  ISSUER: auth.base,
  JWKS_URL: `${auth.base}/.well-known/jwks.json`
})
say(`redis ${redis.url} (AOF everysec), auth-service ${auth.base}, resource-service ${resource.base}`)

// --- measuring -------------------------------------------------------------

const counts = new Map() // "endpoint status" -> n
const latencies = new Map() // endpoint -> ms[]
const wrong = []

function record (endpoint, status, ms) {
  const key = `${endpoint}\t${status}`
  counts.set(key, (counts.get(key) ?? 0) + 1)
  if (!latencies.has(endpoint)) latencies.set(endpoint, [])
  latencies.get(endpoint).push(ms)
}

function wrongState (client, what) {
  wrong.push({ at: at(), client: client.id, what })
}

/** One request; status 0 for a network error, 'hang' when nothing came back in time. */
async function call (endpoint, url, init = {}) {
  const start = performance.now()
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    const body = await response.json().catch(() => ({}))
    record(endpoint, response.status, performance.now() - start)
    return { status: response.status, body, retryAfter: Number(response.headers.get('retry-after') ?? 1) }
  } catch (error) {
    const status = error?.name === 'TimeoutError' ? 'hang' : 0
    record(endpoint, status, performance.now() - start)
    return { status, body: {}, retryAfter: 1 }
  }
}

const form = (fields) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(fields) })

// --- clients ---------------------------------------------------------------

const clients = Array.from({ length: CLIENTS }, (_, id) => ({ id, user: `chaos${id % USERS}`, access: '', refresh: '', revoked: [] }))

/** Retries a 503 or a network error after Retry-After, until `deadline`; any other answer is returned. */
async function untilAnswered (client, endpoint, request, deadline) {
  for (;;) {
    const response = await request()
    if (response.status === 'hang' || (typeof response.status === 'number' && response.status >= 500 && response.status !== 503)) {
      wrongState(client, `${endpoint}: ${response.status}`)
    }
    if (response.status !== 503 && response.status !== 0) return response
    if (Date.now() > deadline) return response
    await sleep(response.retryAfter * 1000)
  }
}

async function logIn (client, deadline) {
  const response = await untilAnswered(client, 'login', () => call('login', `${auth.base}/oauth/token`, form({ grant_type: 'password', username: client.user, password: PASSWORD })), deadline)
  if (response.status !== 200) return false
  client.access = response.body.access_token
  client.refresh = response.body.refresh_token
  return true
}

async function refresh (client, deadline) {
  const old = client.refresh
  const response = await untilAnswered(client, 'refresh', () => call('refresh', `${auth.base}/oauth/token`, form({ grant_type: 'refresh_token', refresh_token: old })), deadline)
  if (response.status === 200) {
    client.access = response.body.access_token
    client.refresh = response.body.refresh_token
  } else if (response.status !== 503 && response.status !== 0) {
    wrongState(client, `refresh refused with ${response.status} ${response.body.error ?? ''}: "${response.body.error_description ?? ''}" although the session was never ended`)
    await logIn(client, deadline)
  }
}

async function callApi (client) {
  const response = await call('api /me', `${resource.base}/me`, { headers: { authorization: `Bearer ${client.access}` } })
  if (response.status === 'hang' || response.status >= 500) wrongState(client, `api: ${response.status}`)
  else if (response.status !== 200) wrongState(client, `api refused a valid access token: ${response.status}`)
}

async function logOut (client, deadline) {
  const token = client.refresh
  const response = await untilAnswered(client, 'logout', () => call('logout', `${auth.base}/oauth/revoke`, form({ token })), deadline)
  if (response.status === 200) {
    client.revoked.push(token)
    await logIn(client, deadline)
  }
}

async function run (client, until) {
  while (Date.now() < until) {
    await sleep(Math.random() * 2 * THINK_MS)
    const dice = Math.random()
    if (dice < 0.65) await callApi(client)
    else if (dice < 0.97) await refresh(client, until)
    else await logOut(client, until)
  }
}

async function inBatches (items, size, task) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(task))
}

// --- the run ---------------------------------------------------------------

say(`registering ${USERS} users and logging in ${CLIENTS} clients`)
await inBatches(Array.from({ length: USERS }, (_, i) => `chaos${i}`), 4, async (username) => {
  const response = await call('register', `${auth.base}/users`, form({ username, password: PASSWORD }))
  if (response.status !== 201) throw new Error(`register ${username}: ${response.status}`)
})
await inBatches(clients, 4, async (client) => {
  if (!await logIn(client, Date.now() + 30_000)) throw new Error(`login of client ${client.id} failed`)
})

const events = []
const event = (what) => { events.push(`${at()}  ${what}`); say(what) }
async function chaos (loadStart) {
  const step = LOAD_MS / 10
  const wait = async (slot) => { await sleep(Math.max(0, loadStart + slot * step - Date.now())) }
  await wait(1)
  event('SIGSTOP redis (3 s)'); redis.pause(); await sleep(3000); redis.resume(); event('SIGCONT redis')
  await wait(3)
  event('SIGKILL redis'); redis.kill('SIGKILL'); await sleep(2000)
  await redis.restart(); event('redis restarted from its AOF')
  await wait(5)
  // Longer than REFRESH_REUSE_GRACE (10 s): clients keep retrying refreshes all along.
  event('SIGSTOP redis (12 s)'); redis.pause(); await sleep(12_000); redis.resume(); event('SIGCONT redis')
  await wait(8.5)
  event('SIGKILL redis, restarted at once'); redis.kill('SIGKILL'); await redis.restart(); event('redis restarted from its AOF')
}

say(`load for ${LOAD_MS / 1000} s with ${CLIENTS} clients`)
const loadStart = Date.now()
const until = loadStart + LOAD_MS
await Promise.all([chaos(loadStart), ...clients.map(async (client) => { await run(client, until) })])
event('load over')

// Every session as its client believes it is: live ones refresh, revoked ones stay dead.
for (let i = 0; i < 100 && !await fetch(`${auth.base}/readyz`).then((response) => response.ok, () => false); i++) await sleep(100)
await inBatches(clients, 20, async (client) => {
  const live = await call('final: live', `${auth.base}/oauth/token`, form({ grant_type: 'refresh_token', refresh_token: client.refresh }))
  if (live.status !== 200) wrongState(client, `final refresh of a live session: ${live.status} ${live.body.error ?? ''}`)
  for (const token of client.revoked) {
    const dead = await call('final: revoked', `${auth.base}/oauth/token`, form({ grant_type: 'refresh_token', refresh_token: token }))
    if (dead.status !== 400) wrongState(client, `a revoked session came back: refresh answered ${dead.status}`)
  }
})

// How long the auth-service itself took, from its own histogram: a stall there, or only in this client?
const metrics = await fetch(`${auth.base}/metrics`).then((response) => response.text())
/** Requests to POST /oauth/token, all statuses, no slower than `le` seconds (a histogram bucket). */
const bucket = (le) => metrics.split('\n')
  .filter((line) => line.startsWith(`baton_auth_http_request_duration_seconds_bucket{le="${le}",method="POST",route="/oauth/token",`))
  .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
const tokenRequests = bucket('+Inf')
const overOneSecond = tokenRequests - bucket('1')
const overTwoAndHalf = tokenRequests - bucket('2.5')

// --- report ----------------------------------------------------------------

const pad = (value, width) => String(value).padStart(width)
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0
const statuses = [...new Set([...counts.keys()].map((key) => key.split('\t')[1]))].sort()
const endpoints = [...latencies.keys()]
const lines = []
lines.push(`\n${'endpoint'.padEnd(14)}${statuses.map((status) => pad(status, 8)).join('')}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('max ms', 9)}`)
for (const endpoint of endpoints) {
  const sorted = latencies.get(endpoint).sort((a, b) => a - b)
  lines.push(`${endpoint.padEnd(14)}${statuses.map((status) => pad(counts.get(`${endpoint}\t${status}`) ?? 0, 8)).join('')}` +
    `${pad(percentile(sorted, 0.5).toFixed(1), 9)}${pad(percentile(sorted, 0.99).toFixed(1), 9)}${pad(sorted.at(-1).toFixed(1), 9)}`)
}
const total = [...counts.values()].reduce((a, b) => a + b, 0)
const longest = Math.max(...[...latencies.values()].map((values) => values.at(-1)))
lines.push(`\n${total} requests in ${at()}; longest stall ${longest.toFixed(0)} ms (status 0 = connection error, hang = no answer in ${REQUEST_TIMEOUT_MS} ms)`)
lines.push(`auth-service's own view of POST /oauth/token: ${tokenRequests} requests, ${overOneSecond} took over 1 s (REDIS_COMMAND_TIMEOUT: each met a paused Redis), ${overTwoAndHalf} over 2.5 s`)
lines.push('\nchaos:')
for (const line of events) lines.push(`  ${line}`)
lines.push(`\nsessions in a wrong state: ${wrong.length}`)
for (const { at: when, client, what } of wrong.slice(0, 50)) lines.push(`  ${when} client ${client}: ${what}`)
process.stdout.write(`${lines.join('\n')}\n`)

for (const child of children) child.kill('SIGTERM')
await Promise.all(children.map((child) => new Promise((resolve) => { if (child.exitCode !== null) resolve(); else child.once('exit', resolve) })))
await redis.stop()
process.exitCode = wrong.length === 0 ? 0 : 1
