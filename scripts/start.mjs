#!/usr/bin/env node
// The root `pnpm start`: runs the whole system for a developer.
//
//   1. Redis: the cluster or Sentinels that REDIS_CLUSTER_NODES or
//      REDIS_SENTINELS name, as they are; else the one at REDIS_URL (default
//      redis://127.0.0.1:6379) if it answers; otherwise, for a loopback URL with redis-server installed, a
//      redis-server started here on that port, append-only file on, data in
//      .redis-data/ at the repository root; otherwise one line on how to get
//      Redis, and exit 1.
//   2. The auth-service (PORT = AUTH_PORT, default 3001); once its /readyz
//      answers 200, the resource-service (PORT = RESOURCE_PORT, default 3002),
//      which fetches the auth-service's JWKS when it starts.
//
// Both services inherit the environment, except PORT (one variable cannot
// serve both), and ISSUER and JWKS_URL when unset, which point at the
// auth-service started here. They share this process's stdout, so stdout
// carries only their pino JSON lines, each naming its `service`; this script
// speaks on stderr. On a terminal (or with LOG_PRETTY=1) their lines are
// printed readable and coloured instead, one line each (pino-pretty, a
// development dependency); LOG_PRETTY=0 keeps JSON on a terminal too. Either
// way the lines are the services' own, already redacted.
//
// With --demo (the root `pnpm demo`), the same, set up for the demo page
// (demo/env.mjs: short-lived access tokens, the page's origin allowed, a key
// prefix of its own in Redis), and then a third child: demo/server.mjs, which
// serves the page on DEMO_PORT (default 3000) at http://localhost.
//
// Stopping: SIGTERM or SIGINT is forwarded to both services; once they have
// exited, Redis (if started here) gets it too, so it outlives every request
// that needs it. A second signal SIGKILLs the services. Exit status 0 only if
// every child exited 0; a child that dies on its own stops the rest, exit 1.
//
// Every child runs in a process group of its own (detached), because pnpm
// ends the script's process group with SIGKILL when pnpm itself is killed:
// the services must get the chance to finish in-flight requests, and Redis
// must not go down under them. If this script is killed without a chance to
// forward anything, the services notice through their IPC channel closing
// (`disconnect`) and stop gracefully; Redis is stopped by a small watchdog
// (see redisWatchdog below).

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import { connect as connectTls } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const REDIS_DATA = join(ROOT, '.redis-data')
const SERVICE_STOP_TIMEOUT_MS = 30_000
const REDIS_STOP_TIMEOUT_MS = 20_000
const READY_TIMEOUT_MS = 60_000

const log = (message) => { process.stderr.write(`start: ${message}\n`) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function fail (message) {
  log(message)
  process.exit(1)
}

if (process.argv[2] === '--redis-watchdog') {
  await redisWatchdog(Number(process.argv[3]))
}

// --- configuration ---------------------------------------------------------

const demo = process.argv.slice(2).includes('--demo')
const env = { ...process.env }
env.REDIS_URL ??= 'redis://127.0.0.1:6379'
const redisUrl = parseRedisUrl(env.REDIS_URL)
const authPort = port('AUTH_PORT', 3001)
const resourcePort = port('RESOURCE_PORT', 3002)
const demoPort = demo ? port('DEMO_PORT', 3000) : undefined
if (demo) Object.assign(env, (await import('../demo/env.mjs')).demoEnvironment(env, { authPort, resourcePort, demoPort }))
// The services listen on HOST; a wildcard address is reached over loopback.
const probeHost = ['0.0.0.0', '::', '[::]', undefined, ''].includes(env.HOST)
  ? '127.0.0.1'
  : env.HOST.includes(':') ? `[${env.HOST.replace(/^\[|\]$/g, '')}]` : env.HOST
const authUrl = `http://${probeHost}:${authPort}`
const resourceUrl = `http://${probeHost}:${resourcePort}`
// Tokens name the issuer; the resource-service fetches keys from the
// auth-service started here, whatever ISSUER says.
env.ISSUER ??= `http://127.0.0.1:${authPort}`
env.JWKS_URL ??= `${authUrl}/.well-known/jwks.json`

const prettyLogs = logFormat()
const prettify = prettyLogs ? await prettyPrinter() : undefined

function logFormat () {
  const value = env.LOG_PRETTY ?? ''
  if (value === '') return process.stdout.isTTY === true
  if (['1', 'true'].includes(value)) return true
  if (['0', 'false'].includes(value)) return false
  fail(`invalid LOG_PRETTY: ${value} (1 or true: readable lines, 0 or false: JSON; unset: readable on a terminal)`)
}

/** A function from one JSON log line to one readable, coloured line; undefined when pino-pretty is not installed. */
async function prettyPrinter () {
  let prettyFactory
  try {
    ({ prettyFactory } = (await import('pino-pretty')).default)
  } catch {
    log('pino-pretty is not installed (a development dependency); logging JSON')
    return undefined
  }
  return prettyFactory({
    colorize: !('NO_COLOR' in env),
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service,version',
    messageFormat: (line, messageKey) => `${line.service ?? '?'}: ${line[messageKey] ?? ''}`
  })
}

function port (name, fallback) {
  const value = env[name] ?? String(fallback)
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) fail(`invalid ${name}: ${value} is not a TCP port`)
  return Number(value)
}

function parseRedisUrl (text) {
  let url
  try {
    url = new URL(text)
  } catch {
    fail('invalid REDIS_URL: not a URL (expected redis://host:port)')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') fail('invalid REDIS_URL: the scheme must be redis:// or rediss://')
  const host = url.hostname.replace(/^\[|\]$/g, '')
  return {
    tls: url.protocol === 'rediss:',
    host,
    port: Number(url.port === '' ? 6379 : url.port),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    loopback: host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host),
    // Never print the password.
    display: `${url.protocol}//${url.host}`
  }
}

// --- children ----------------------------------------------------------------

/** @type {Array<{ name: string, kind: 'service' | 'redis', child: import('node:child_process').ChildProcess, result?: { code: number | null, signal: string | null }, exited: Promise<unknown> }>} */
const children = []
let stopping = false
let failed = false
let watchdog

function track (name, kind, child) {
  const entry = { name, kind, child }
  entry.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => { entry.result = { code, signal }; resolve() })
    // A child that could not be spawned emits 'error' and never 'exit'.
    child.once('error', (error) => {
      if (entry.result !== undefined) return
      log(`${name}: ${error.message}`)
      entry.result = { code: 1, signal: null }
      resolve()
    })
  })
  entry.exited.then(() => {
    if (stopping) return
    const { code, signal } = entry.result
    log(`${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the rest`)
    failed = true
    void shutdown('SIGTERM')
  })
  children.push(entry)
  return entry
}

const running = (entry) => entry.result === undefined

async function stopChildren (entries, signal, timeoutMs) {
  for (const entry of entries) if (running(entry)) entry.child.kill(signal)
  const timer = setTimeout(() => {
    for (const entry of entries) {
      if (!running(entry)) continue
      log(`${entry.name} did not stop within ${timeoutMs / 1000} s; killing it`)
      entry.child.kill('SIGKILL')
    }
  }, timeoutMs)
  await Promise.all(entries.map((entry) => entry.exited))
  clearTimeout(timer)
}

let shuttingDown
function shutdown (signal) {
  stopping = true
  shuttingDown ??= (async () => {
    await stopChildren(children.filter((entry) => entry.kind === 'service'), signal, SERVICE_STOP_TIMEOUT_MS)
    await Promise.all(children.map((entry) => entry.printed))
    await stopChildren(children.filter((entry) => entry.kind === 'redis'), signal, REDIS_STOP_TIMEOUT_MS)
    if (watchdog !== undefined) watchdog.stdin.end('done\n')
    const clean = !failed && children.every((entry) => entry.result?.code === 0)
    if (!clean) {
      const report = children.map(({ name, result }) => `${name}: ${result?.signal ?? `code ${result?.code}`}`).join(', ')
      log(`stopped (${report})`)
    }
    process.exit(clean ? 0 : 1)
  })()
  return shuttingDown
}

let signalsReceived = 0
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    signalsReceived++
    if (signalsReceived === 1) {
      log(`${signal}: stopping the services${children.some((entry) => entry.kind === 'redis') ? ', then Redis' : ''}`)
      void shutdown(signal)
      return
    }
    log(`${signal} again: killing the services`)
    for (const entry of children) if (entry.kind === 'service' && running(entry)) entry.child.kill('SIGKILL')
  })
}

// --- Redis -------------------------------------------------------------------

/** The first reply line of PING, or undefined if no Redis answers. NOAUTH still means a Redis is there. */
async function ping ({ host, port, tls }, timeoutMs = 1000) {
  return await new Promise((resolve) => {
    const socket = tls
      ? connectTls({ host, port, servername: host, rejectUnauthorized: false })
      : connect({ host, port })
    let reply = ''
    const done = (value) => { socket.destroy(); resolve(value) }
    socket.setTimeout(timeoutMs, () => done(undefined))
    socket.once('error', () => done(undefined))
    socket.once('close', () => done(undefined))
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      const end = reply.indexOf('\r\n')
      if (end === -1) return
      // Only a RESP reply (+PONG, or an error such as -NOAUTH) is a Redis;
      // a proxy may well accept the connection and answer in HTTP.
      done(/^[+-]/.test(reply) ? reply.slice(0, end) : undefined)
    })
  })
}

function hasRedisServer () {
  return spawnSync('/bin/sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0
}

async function startRedis () {
  mkdirSync(REDIS_DATA, { recursive: true })
  const logfile = join(REDIS_DATA, 'redis.log')
  const { host, port, password } = redisUrl
  // `-::1`: also IPv6 loopback where there is one (Node may resolve
  // "localhost" to ::1), without failing where there is none.
  const bind = host === 'localhost' ? ['127.0.0.1', '-::1'] : [host]
  const args = [
    // `-`: further configuration from stdin, where the password, unlike in
    // the arguments, is not on show to `ps`.
    '-',
    '--port', String(port), '--bind', ...bind, '--daemonize', 'no',
    '--dir', REDIS_DATA, '--logfile', logfile,
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''
  ]
  log(`no Redis answers at ${redisUrl.display}; starting redis-server (data: .redis-data/, log: .redis-data/redis.log)`)
  const child = spawn('redis-server', args, { cwd: ROOT, detached: true, stdio: ['pipe', 'ignore', 'inherit'] })
  child.stdin.on('error', () => {})
  child.stdin.end(password === undefined ? '' : `requirepass "${password.replace(/[\\"]/g, '\\$&')}"\n`)
  const entry = track('redis-server', 'redis', child)
  if (child.pid !== undefined) {
    watchdog = spawn(process.execPath, [fileURLToPath(import.meta.url), '--redis-watchdog', String(child.pid)], { detached: true, stdio: ['pipe', 'ignore', 'inherit'] })
    watchdog.stdin.on('error', () => {})
    watchdog.on('error', (error) => { log(`could not start the Redis watchdog: ${error.message}`) })
    watchdog.unref()
  }

  // Replaying a large append-only file takes a while; Redis answers LOADING meanwhile.
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (stopping) return
    if (!running(entry)) {
      const tail = existsSync(logfile) ? readFileSync(logfile, 'utf8').trim().split('\n').slice(-3).join(' | ') : ''
      throw new Error(`redis-server could not start${tail === '' ? '' : `: ${tail}`}`)
    }
    const reply = await ping(redisUrl, 500)
    if (reply !== undefined && !reply.startsWith('-LOADING')) return
    await sleep(100)
  }
  throw new Error(`redis-server did not answer on ${redisUrl.display} within ${READY_TIMEOUT_MS / 1000} s`)
}

// --- services ------------------------------------------------------------------

function startService (name, port) {
  return startChild(name, join(ROOT, 'services', name, 'dist', 'server.js'), join(ROOT, 'services', name), { ...env, PORT: String(port) })
}

function startChild (name, script, cwd, childEnv) {
  // The IPC channel is how a child learns that this script is gone.
  const child = spawn(process.execPath, [script], {
    cwd,
    env: childEnv,
    detached: true,
    stdio: ['ignore', prettify === undefined ? 'inherit' : 'pipe', 'inherit', 'ipc']
  })
  if (watchdog !== undefined && child.pid !== undefined) watchdog.stdin.write(`service ${child.pid}\n`)
  const entry = track(name, 'service', child)
  if (prettify !== undefined && child.stdout !== null) {
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity })
    lines.on('line', (line) => { process.stdout.write(prettify(line)) })
    // Printed to the last line before this script exits.
    entry.printed = new Promise((resolve) => lines.once('close', resolve))
  }
  return entry
}

async function waitReady (entry, baseUrl) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let lastReport = Date.now()
  while (Date.now() < deadline) {
    if (stopping || !running(entry)) return false
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === 200) return true
    } catch {}
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now()
      log(`waiting for ${entry.name} to be ready at ${baseUrl}/readyz`)
    }
    await sleep(250)
  }
  throw new Error(`${entry.name} was not ready at ${baseUrl}/readyz within ${READY_TIMEOUT_MS / 1000} s`)
}

// --- main ----------------------------------------------------------------------

async function main () {
  for (const name of ['auth-service', 'resource-service']) {
    if (!existsSync(join(ROOT, 'services', name, 'dist', 'server.js'))) {
      fail(`services/${name}/dist/server.js is missing; run \`pnpm build\` first (\`pnpm start\` does)`)
    }
  }

  const managedElsewhere = ['REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'].find((name) => (env[name] ?? '').trim() !== '')
  if (managedElsewhere !== undefined) {
    // A cluster or a Sentinel set is the operator's: the auth-service validates it and reports what it finds.
    log(`using the Redis that ${managedElsewhere} names`)
  } else if (await ping(redisUrl) !== undefined) {
    log(`using the Redis at ${redisUrl.display}`)
  } else if (!redisUrl.loopback || redisUrl.tls) {
    fail(`no Redis answers at ${redisUrl.display}, and none is started for a remote or TLS address: start that Redis, or set REDIS_URL to a running one (unset, a local redis-server is used or started)`)
  } else if (!hasRedisServer()) {
    fail(`no Redis answers at ${redisUrl.display} and redis-server is not installed: apt-get install redis-server (or brew install redis), or run \`docker compose up -d redis\`, or set REDIS_URL to a running Redis`)
  } else {
    await startRedis()
  }

  if (stopping) return
  const auth = startService('auth-service', authPort)
  if (!await waitReady(auth, authUrl)) return
  const resource = startService('resource-service', resourcePort)
  if (!await waitReady(resource, resourceUrl)) return
  if (!demo) {
    log(`ready: auth-service ${authUrl}, resource-service ${resourceUrl} (Ctrl-C to stop)`)
    return
  }
  const page = startChild('demo', join(ROOT, 'demo', 'server.mjs'), join(ROOT, 'demo'), { ...env, PORT: String(demoPort) })
  if (!await waitReady(page, `http://${probeHost}:${demoPort}`)) return
  log(`ready: auth-service ${authUrl}, resource-service ${resourceUrl}, demo page ${env.DEMO_URL} (Ctrl-C to stop)`)
  log(`open ${env.DEMO_URL} in a browser`)
}

main().catch((error) => {
  log(error.message)
  failed = true
  void shutdown('SIGTERM')
})

// --- watchdog ------------------------------------------------------------------

// Stops Redis if this script dies without stopping it (SIGKILL, e.g. from
// pnpm, or a crash). It is this same file, run as a second process with a
// pipe from the supervisor on stdin and in a process group of its own, so the
// SIGKILL aimed at the supervisor's group does not reach it. EOF without a
// "done" line means the supervisor is gone: it waits for the services to exit
// (they stop by themselves when their IPC channel closes), then sends Redis
// SIGTERM, which makes it flush its append-only file and exit.
async function redisWatchdog (redisPid) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {})
  const services = new Set()
  let done = false
  let buffer = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk) => {
    buffer += chunk
    for (let newline; (newline = buffer.indexOf('\n')) !== -1; buffer = buffer.slice(newline + 1)) {
      const line = buffer.slice(0, newline)
      if (line === 'done') done = true
      else if (line.startsWith('service ')) services.add(Number(line.slice('service '.length)))
    }
  })
  await new Promise((resolve) => {
    process.stdin.once('end', resolve)
    process.stdin.once('error', resolve)
  })
  if (done || !alive(redisPid)) process.exit(0)
  log('the start script is gone; stopping Redis once the services have exited')
  for (const until = Date.now() + SERVICE_STOP_TIMEOUT_MS; [...services].some(alive) && Date.now() < until;) await sleep(200)
  try {
    process.kill(redisPid, 'SIGTERM')
  } catch {
    process.exit(0)
  }
  for (const until = Date.now() + REDIS_STOP_TIMEOUT_MS; alive(redisPid) && Date.now() < until;) await sleep(200)
  if (alive(redisPid)) {
    try { process.kill(redisPid, 'SIGKILL') } catch {}
  }
  process.exit(0)
}

function alive (pid) {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return error.code === 'EPERM'
  }
  // An orphan that exited is a zombie until init reaps it, and some
  // container inits never do.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}
