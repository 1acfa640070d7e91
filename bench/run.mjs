// pnpm bench [--quick] [--processes N] [--profile] [--only verify,refresh,dpop-verify,dpop-refresh,login,mixed]
//
// Starts a private redis-server, the auth-service and the resource-service
// (`node dist/server.js`, N cluster workers each with --processes), the
// reference servers and the peers (what a user would pick instead of
// Baton), then drives each scenario from a separate load process
// (bench/load.mjs, autocannon) and compares it with its reference and peers
// measured in the same run, then measures latency at fixed rates below the
// maximum. Prints a table, writes bench/results/<time>.json, latest.json and
// latest.svg. Every run is bounded in time and in requests.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { freePort, startRedis } from '@baton/test-redis'
import { startService } from './lib/processes.mjs'
import { openSeeder } from './lib/seed.mjs'
import { chartSvg, markdownTable, tableRows, textTable } from './lib/report.mjs'
import { summarizeProfile } from './profile-summary.mjs'
import { dpopKey, dpopSigner } from './lib/dpop.mjs'

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    processes: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    only: { type: 'string', default: 'verify,refresh,dpop-verify,dpop-refresh,login,mixed' },
    duration: { type: 'string' }
  }
})
const processes = Number(flags.processes)
if (!Number.isSafeInteger(processes) || processes < 1 || processes > 16) {
  process.stderr.write('bench: --processes must be an integer from 1 to 16\n')
  process.exit(2)
}
const only = new Set(flags.only.split(','))
const DURATION = Number(flags.duration ?? (flags.quick ? 4 : 10))
// Service and reference take turns, so that load from elsewhere on the machine hits both alike.
const ROUNDS = flags.quick ? 2 : 3
const CONNECTIONS = 50
const TOKENS = 1000
// Fresh refresh tokens per turn are seeded to match the reference's rate, up to this many.
const MAX_REFRESH_POOL = 300_000
const LOGIN_USERS = 200
const PASSWORD = 'correct horse battery staple'
const ARGON2 = { memoryKiB: 19_456, iterations: 2, parallelism: 1 }
const HOST = '127.0.0.1'
// The auth-service's ARGON2_CONCURRENCY, passed on from the environment when set.
const HASH_CONCURRENCY = Number(process.env.ARGON2_CONCURRENCY ?? availableParallelism())

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const resultsDir = here('./results/')
const stamp = new Date().toISOString().replace(/[:.]/g, '-')
const profileDir = flags.profile ? here(`./results/profiles/${stamp}/`) : undefined
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })

const log = (message) => process.stderr.write(`bench: ${message}\n`)

/** Runs autocannon loads in a fresh load-generator process; all of `runs` at once. */
async function load (runs) {
  const child = fork(here('./load.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const reply = await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`load generator exited (${code}) without results`)))
    child.send(runs)
  })
  if (reply.error !== undefined) throw new Error(reply.error)
  return reply.results
}

async function argon2Reference (durationSeconds) {
  const children = Array.from({ length: processes }, () => fork(here('./argon2-reference.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const replies = await Promise.all(children.map(async (child) => await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`argon2 reference exited (${code})`)))
    // As many hashes in flight as one auth-service process allows itself (ARGON2_CONCURRENCY, one per CPU).
    child.send({ durationMs: durationSeconds * 1000, concurrency: Math.min(CONNECTIONS, HASH_CONCURRENCY), ...ARGON2 })
  })))
  const done = replies.reduce((sum, reply) => sum + reply.done, 0)
  const seconds = Math.max(...replies.map((reply) => reply.seconds))
  return { ok: done, requests: done, seconds, latency: {}, errors: 0, timeouts: 0, non2xx: 0 }
}

/**
 * CPU milliseconds a process has used so far, on its main thread (the event
 * loop) and on libuv's pool threads, from /proc (Linux; zeros elsewhere).
 */
function threadTimes (pid) {
  const times = { main: 0, pool: 0, all: 0 }
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // utime and stime, in clock ticks (100 a second on Linux).
      const ms = (Number(fields[11]) + Number(fields[12])) * 10
      times.all += ms
      if (tid === String(pid)) times.main += ms
      else if (name.startsWith('libuv-worker')) times.pool += ms
    }
  } catch {}
  return times
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/** Turns of one load as one result: rates over the summed time, latencies the median turn's, counts summed. */
function combine (turns) {
  const seconds = turns.reduce((sum, turn) => sum + turn.seconds, 0)
  const sum = (key) => turns.reduce((total, turn) => total + turn[key], 0)
  return {
    rps: sum('ok') / seconds,
    seconds,
    requests: sum('requests'),
    ok: sum('ok'),
    latency: { p50: median(turns.map((turn) => turn.latency.p50)), p99: median(turns.map((turn) => turn.latency.p99)), p99_9: median(turns.map((turn) => turn.latency.p99_9)) },
    errors: sum('errors'),
    timeouts: sum('timeouts'),
    non2xx: sum('non2xx'),
    rounds: turns
  }
}

const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  node: process.version,
  processes,
  connections: CONNECTIONS,
  durationSeconds: DURATION,
  rounds: ROUNDS
}
log(`${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${processes} process(es) per service, ${DURATION} s per run, ${ROUNDS} rounds`)

const redis = await startRedis({ extraArgs: ['--save', '', '--appendonly', 'no'] })
const started = []
const scenarios = []
let exitCode = 0
try {
  const [authPort, resourcePort, referencePort, jwtPeerPort, oidcPeerPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()])
  const issuer = `http://${HOST}:${authPort}`
  const secret = randomBytes(32).toString('base64url')
  const common = { HOST, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ISSUER: issuer }
  const auth = await startService({
    name: 'auth-service',
    script: here('../services/auth-service/dist/server.js'),
    env: {
      ...common,
      PORT: String(authPort),
      REDIS_URL: redis.url,
      REFRESH_TOKEN_SECRET: secret,
      // One client address sends every login: the per-IP attempt limit would turn most into 429s.
      RATE_LIMIT_IP_ATTEMPTS: '1000000000',
      // A machine shared with other work can stall a process for over a second: that is not a Redis fault to answer 503 for.
      REDIS_COMMAND_TIMEOUT: '10000',
      ARGON2_CONCURRENCY: String(HASH_CONCURRENCY)
    },
    processes,
    readyUrl: `${issuer}/readyz`,
    profileDir
  })
  started.push(auth)
  const resource = await startService({
    name: 'resource-service',
    script: here('../services/resource-service/dist/server.js'),
    // With the revocation feed, as a deployment that wants logout honoured at once runs it.
    env: { ...common, PORT: String(resourcePort), JWKS_URL: `${issuer}/.well-known/jwks.json`, REDIS_URL: redis.url },
    processes,
    readyUrl: `http://${HOST}:${resourcePort}/readyz`,
    profileDir
  })
  started.push(resource)
  const reference = await startService({
    name: 'reference',
    script: here('./reference-server.mjs'),
    env: { LOG_LEVEL: common.LOG_LEVEL, PORT: String(referencePort), REDIS_URL: redis.url },
    processes,
    readyUrl: `http://${HOST}:${referencePort}/healthz`,
    profileDir
  })
  started.push(reference)
  // Peers run one process each: they are what a user would deploy instead, measured as they come.
  const jwtPeer = only.has('verify')
    ? await startService({
      name: 'peer-fastify-jwt',
      script: here('./peer-fastify-jwt.mjs'),
      env: { LOG_LEVEL: common.LOG_LEVEL, PORT: String(jwtPeerPort), JWKS_URL: `${issuer}/.well-known/jwks.json`, ISSUER: issuer },
      readyUrl: `http://${HOST}:${jwtPeerPort}/healthz`,
      profileDir
    })
    : undefined
  if (jwtPeer !== undefined) started.push(jwtPeer)
  const oidcPeer = only.has('refresh')
    ? await startService({
      name: 'peer-oidc-provider',
      script: here('./peer-oidc-provider.mjs'),
      env: { PORT: String(oidcPeerPort), REDIS_URL: redis.url },
      readyUrl: `http://${HOST}:${oidcPeerPort}/healthz`,
      profileDir
    })
    : undefined
  if (oidcPeer !== undefined) started.push(oidcPeer)
  const rss = () => ({ 'auth-service': auth.rss(), 'resource-service': resource.rss() })

  const seeder = await openSeeder({ redisUrl: redis.url, secret })
  const seedStart = Date.now()
  // Access tokens from the real auth-service: one refresh of each seeded session.
  const accessTokens = []
  const first = await seeder.refreshTokens(TOKENS)
  for (let i = 0; i < first.length; i += 50) {
    accessTokens.push(...await Promise.all(first.slice(i, i + 50).map(async (refreshToken) => {
      const response = await fetch(`${issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refreshToken }) })
      const body = await response.json()
      if (response.status !== 200) throw new Error(`seeding refresh got ${response.status}: ${JSON.stringify(body)}`)
      return body.access_token
    })))
  }
  const check = await fetch(`http://${HOST}:${resourcePort}/me`, { headers: { authorization: `Bearer ${accessTokens[0]}` } })
  if (check.status !== 200) throw new Error(`GET /me with a fresh token answered ${check.status}`)
  await check.arrayBuffer()
  log(`${accessTokens.length} access tokens issued in ${Date.now() - seedStart} ms`)

  const base = { connections: CONNECTIONS, durationSeconds: DURATION }
  const single = async (run) => (await load([run]))[0]
  /**
   * ROUNDS turns of each reference (the first is the one the target is set
   * against, the rest are peers), then the service. A run may be a function
   * of the turns so far, to seed each turn its own pool of single-use tokens.
   */
  async function compare (label, references, serviceRun, servicePid) {
    const turns = { references: references.map(() => []), service: [] }
    const redisCalls = {}
    const resolve = async (run, previous) => typeof run === 'function' ? await run(previous) : run
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, reference] of references.entries()) {
        log(`${label}: round ${round + 1}/${ROUNDS}, ${reference.name}`)
        const run = await resolve(reference.run, turns.references[i].at(-1))
        const cpuBefore = threadTimes(reference.pid)
        turns.references[i].push(await single(run))
        turns.references[i].at(-1).cpuMs = threadTimes(reference.pid).all - cpuBefore.all
      }
      const run = await serviceRun(turns.references[0][round])
      log(`${label}: round ${round + 1}/${ROUNDS}, Baton`)
      const before = await seeder.commandCounts()
      const cpuBefore = threadTimes(servicePid)
      turns.service.push(await single(run))
      // The service's CPU per answered request, all its threads: what capacity planning divides by.
      turns.service.at(-1).cpuMs = threadTimes(servicePid).all - cpuBefore.all
      for (const [command, calls] of Object.entries(await seeder.commandCounts())) {
        if (command !== 'info' && calls > (before[command] ?? 0)) redisCalls[command] = (redisCalls[command] ?? 0) + calls - (before[command] ?? 0)
      }
    }
    const service = combine(turns.service)
    // Under cluster workers the primary's threads are not the service's: only one process is counted.
    if (processes === 1) service.cpuPerRequestMs = { all: turns.service.reduce((sum, turn) => sum + turn.cpuMs, 0) / service.requests }
    if (processes === 1) log(`${label}: the service's CPU per request ${(service.cpuPerRequestMs.all * 1000).toFixed(0)} µs`)
    // Redis commands the service sent per answered request: its round trips.
    service.redisCommandsPerRequest = Object.fromEntries(Object.entries(redisCalls).map(([command, calls]) => [command, Number((calls / service.requests).toFixed(3))]))
    const [reference, ...peers] = references.map((ref, i) => ({ name: ref.name, ...combine(turns.references[i]) }))
    if (processes === 1) {
      for (const [i, ref] of [reference, ...peers].entries()) {
        ref.cpuPerRequestMs = { all: turns.references[i].reduce((sum, turn) => sum + turn.cpuMs, 0) / ref.requests }
        log(`${label}: ${ref.name}'s CPU per request ${(ref.cpuPerRequestMs.all * 1000).toFixed(0)} µs`)
      }
    }
    for (const peer of peers) peer.ratio = service.rps / peer.rps
    return { reference, peers, service }
  }

  /**
   * Latency well below saturation: the service driven at fixed request rates
   * (autocannon's overallRate) of `shares` of the maximum it just reached.
   * autocannon sends on schedule only while a connection is free, so a stall
   * shows as a lower achieved rate as well as a higher latency.
   */
  async function underLoad (label, maximum, runAt) {
    const points = []
    for (const share of [0.25, 0.5, 0.75]) {
      const rate = Math.max(1, Math.round(maximum * share))
      log(`${label}: ${rate}/s (${share * 100} % of ${Math.round(maximum)}/s)`)
      const result = await single({ ...await runAt(rate), overallRate: rate })
      points.push({ share, offered: rate, achieved: result.rps, latency: result.latency, errors: result.errors + result.timeouts, non2xx: result.non2xx })
    }
    return points
  }
  const byName = {}

  if (only.has('verify')) {
    const serviceRun = { ...base, label: 'GET /me', kind: 'me', url: `http://${HOST}:${resourcePort}`, pool: accessTokens }
    const { reference: ref, peers, service } = await compare('verify', [
      { name: 'bare Fastify route', pid: reference.pid, run: { ...base, label: 'bare /me', kind: 'me', url: `http://${HOST}:${referencePort}`, pool: accessTokens } },
      { name: '@fastify/jwt + fast-jwt cache', pid: jwtPeer.pid, run: { ...base, label: '@fastify/jwt /me', kind: 'me', url: `http://${HOST}:${jwtPeerPort}`, pool: accessTokens } }
    ], () => serviceRun, resource.pid)
    service.underLoad = await underLoad('verify', service.rps, async () => serviceRun)
    byName.verify = { name: 'verify', service, reference: ref, peers, ratio: service.rps / ref.rps, rss: rss(), target: '≥ 0.85' }
    scenarios.push(byName.verify)
  }

  if (only.has('refresh')) {
    const pools = []
    /** Enough fresh tokens for a turn at `rate`, with room to spare. */
    const poolSize = (rate) => Math.min(MAX_REFRESH_POOL, Math.ceil(Math.max(rate, 2000) * DURATION * 1.5))
    const serviceRun = async (rate) => {
      const size = poolSize(rate)
      const t0 = Date.now()
      pools.push(await seeder.refreshTokens(size))
      log(`refresh: ${size} sessions seeded in ${Date.now() - t0} ms`)
      return { ...base, label: 'refresh grant', kind: 'refresh', url: issuer, pool: pools.at(-1), amount: size }
    }
    const { reference: ref, peers, service } = await compare('refresh', [
      { name: 'minimal rotation', pid: reference.pid, run: { ...base, label: 'Fastify + EVALSHA + Ed25519', kind: 'refresh', path: '/rotate', url: `http://${HOST}:${referencePort}`, pool: first } },
      {
        name: 'oidc-provider + Redis',
        pid: oidcPeer.pid,
        run: async (previous) => {
          // oidc-provider's tokens are its own: seeded through its Grant and RefreshToken models.
          const size = Math.min(MAX_REFRESH_POOL, Math.ceil(Math.max(previous?.rps ?? 2000, 500) * DURATION * 1.5))
          const response = await fetch(`http://${HOST}:${oidcPeerPort}/bench/seed?count=${size}`, { method: 'POST' })
          if (response.status !== 200) throw new Error(`seeding oidc-provider got ${response.status}: ${await response.text()}`)
          const pool = (await response.text()).split('\n')
          return { ...base, label: 'oidc-provider refresh', kind: 'refresh', path: '/token', form: true, params: { client_id: 'bench' }, url: `http://${HOST}:${oidcPeerPort}`, pool, amount: pool.length }
        }
      }
    ], async (referenceTurn) => await serviceRun(referenceTurn.rps), auth.pid)
    if (service.rounds.some((turn, i) => turn.requests >= pools[i].length)) log('refresh: a token pool ran out before the time did')
    log(`refresh: Redis commands per rotation ${JSON.stringify(service.redisCommandsPerRequest)}`)
    service.underLoad = await underLoad('refresh', service.rps, serviceRun)
    byName.refresh = { name: 'refresh', service, reference: ref, peers, ratio: service.rps / ref.rps, rss: rss(), target: '≥ 0.85' }
    scenarios.push(byName.refresh)
  }

  if (only.has('dpop-verify')) {
    // DPoP-bound access tokens from the real auth-service (a bound session refreshed with a proof),
    // against the Bearer GET /me in alternating turns of one run: the ratio is what a proof costs a verification.
    const { privateJwk, jkt } = dpopKey()
    const sign = dpopSigner(privateJwk)
    const boundTokens = []
    const bound = await seeder.refreshTokens(TOKENS, { jkt })
    for (let i = 0; i < bound.length; i += 50) {
      boundTokens.push(...await Promise.all(bound.slice(i, i + 50).map(async (refreshToken) => {
        const response = await fetch(`${issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json', dpop: sign('POST', `${issuer}/oauth/token`) }, body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refreshToken }) })
        const body = await response.json()
        if (response.status !== 200 || body.token_type !== 'DPoP') throw new Error(`seeding a DPoP refresh got ${response.status}: ${JSON.stringify(body)}`)
        return body.access_token
      })))
    }
    const meUrl = `http://${HOST}:${resourcePort}`
    const check = await fetch(`${meUrl}/me`, { headers: { authorization: `DPoP ${boundTokens[0]}`, dpop: sign('GET', `${meUrl}/me`, boundTokens[0]) } })
    if (check.status !== 200) throw new Error(`GET /me with a DPoP-bound token answered ${check.status}: ${await check.text()}`)
    await check.arrayBuffer()
    const { reference: ref, service } = await compare('dpop-verify', [
      { name: 'Bearer GET /me', pid: resource.pid, run: { ...base, label: 'Bearer GET /me', kind: 'me', url: meUrl, pool: accessTokens } }
    ], () => ({ ...base, label: 'DPoP GET /me', kind: 'dpop-me', url: meUrl, pool: boundTokens, privateJwk }), resource.pid)
    byName['dpop-verify'] = { name: 'dpop-verify', service, reference: ref, peers: [], ratio: service.rps / ref.rps, rss: rss(), target: '' }
    scenarios.push(byName['dpop-verify'])
  }

  if (only.has('dpop-refresh')) {
    // The refresh grant of DPoP-bound sessions against the Bearer refresh grant, in alternating
    // turns of one run: the ratio is what checking a proof and remembering its jti cost a rotation.
    const { privateJwk, jkt } = dpopKey()
    const size = Math.min(MAX_REFRESH_POOL, Math.ceil(Math.max(byName.refresh?.service.rps ?? 0, 5000) * DURATION * 1.5))
    const seeded = async (kind, options) => {
      const t0 = Date.now()
      const pool = await seeder.refreshTokens(size, options)
      log(`dpop-refresh: ${size} ${kind} sessions seeded in ${Date.now() - t0} ms`)
      return pool
    }
    const { reference: ref, service } = await compare('dpop-refresh', [
      { name: 'Bearer refresh grant', pid: auth.pid, run: async () => ({ ...base, label: 'refresh grant', kind: 'refresh', url: issuer, pool: await seeded('unbound'), amount: size }) }
    ], async () => ({ ...base, label: 'DPoP refresh grant', kind: 'dpop-refresh', url: issuer, pool: await seeded('DPoP-bound', { jkt }), amount: size, privateJwk }), auth.pid)
    if (service.rounds.some((turn) => turn.requests >= size)) log('dpop-refresh: a token pool ran out before the time did')
    log(`dpop-refresh: Redis commands per rotation ${JSON.stringify(service.redisCommandsPerRequest)}`)
    byName['dpop-refresh'] = { name: 'dpop-refresh', service, reference: ref, peers: [], ratio: service.rps / ref.rps, rss: rss(), target: '' }
    scenarios.push(byName['dpop-refresh'])
  }

  let users
  if (only.has('login') || only.has('mixed')) users = await seeder.users(LOGIN_USERS, PASSWORD, ARGON2)

  if (only.has('login')) {
    const turns = { reference: [], service: [], probe: [] }
    for (let round = 0; round < ROUNDS; round++) {
      log(`login: round ${round + 1}/${ROUNDS}, raw argon2id`)
      turns.reference.push(await argon2Reference(DURATION))
      log(`login: round ${round + 1}/${ROUNDS}, password grant with /healthz probed alongside`)
      const before = threadTimes(auth.pid)
      const [service, probe] = await load([
        { ...base, label: 'password grant', kind: 'login', url: issuer, pool: users, password: PASSWORD },
        { label: '/healthz', kind: 'get', path: '/healthz', url: issuer, connections: 1, overallRate: 50, durationSeconds: DURATION }
      ])
      const after = threadTimes(auth.pid)
      const requests = service.requests + probe.requests
      // Where a login's CPU goes: the event loop (everything but the hash) and the libuv threads (the hash).
      service.cpuPerRequestMs = {
        eventLoop: (after.main - before.main) / requests,
        threadPool: (after.pool - before.pool) / service.requests
      }
      turns.service.push(service)
      turns.probe.push(probe)
    }
    const ref = combine(turns.reference)
    const service = combine(turns.service)
    const cpu = (key) => turns.service.reduce((sum, turn) => sum + turn.cpuPerRequestMs[key], 0) / turns.service.length
    service.cpuPerRequestMs = { eventLoop: cpu('eventLoop'), threadPool: cpu('threadPool') }
    log(`login: CPU per login ${service.cpuPerRequestMs.eventLoop.toFixed(2)} ms on the event loop, ${service.cpuPerRequestMs.threadPool.toFixed(2)} ms on libuv's threads`)
    byName.login = { name: 'login', service, probe: combine(turns.probe), reference: { name: 'raw argon2id', ...ref }, ratio: service.rps / ref.rps, rss: rss(), target: '≥ 0.90' }
    scenarios.push(byName.login)
  }

  if (only.has('mixed') && byName.verify && byName.refresh && byName.login) {
    // If costs simply added up, the mix could run at this rate: the reference.
    const predicted = 1 / (0.95 / byName.verify.service.rps + 0.04 / byName.refresh.service.rps + 0.01 / byName.login.service.rps)
    const pool = await seeder.refreshTokens(Math.ceil(predicted * 0.04 * DURATION * 1.5) + 100)
    log(`mixed: 95 % GET /me, 4 % refresh, 1 % login; predicted ${Math.round(predicted)}/s`)
    const parts = await load([
      { label: 'GET /me', kind: 'me', url: `http://${HOST}:${resourcePort}`, pool: accessTokens, connections: 44, durationSeconds: DURATION, overallRate: Math.ceil(predicted * 0.95 * 1.2) },
      { label: 'refresh', kind: 'refresh', url: issuer, pool, amount: pool.length, connections: 4, durationSeconds: DURATION, overallRate: Math.ceil(predicted * 0.04) },
      { label: 'login', kind: 'login', url: issuer, pool: users, password: PASSWORD, connections: 2, durationSeconds: DURATION, overallRate: Math.max(1, Math.ceil(predicted * 0.01)) }
    ])
    const total = parts.reduce((sum, part) => sum + part.rps, 0)
    const weighted = (key) => Math.max(...parts.map((part) => part.latency[key]))
    const service = {
      rps: total,
      latency: { p50: parts[0].latency.p50, p99: weighted('p99') },
      errors: parts.reduce((sum, part) => sum + part.errors, 0),
      timeouts: parts.reduce((sum, part) => sum + part.timeouts, 0),
      non2xx: parts.reduce((sum, part) => sum + part.non2xx, 0),
      parts,
      mix: parts.map((part) => `${part.label} ${(100 * part.rps / total).toFixed(1)} %`).join(', ')
    }
    log(`mixed: achieved ${service.mix}`)
    byName.mixed = { name: 'mixed', service, reference: { name: 'costs added up', rps: predicted }, ratio: total / predicted, rss: rss(), target: '' }
    scenarios.push(byName.mixed)
  }
  await seeder.close()
} catch (error) {
  log(String(error?.stack ?? error))
  exitCode = 1
} finally {
  for (const service of started.reverse()) {
    const { code, signal } = await service.stop()
    if (code !== 0) {
      log(`${service.name} did not stop cleanly (${code ?? signal})`)
      exitCode = 1
    }
  }
  await redis.stop()
}

if (scenarios.length > 0) {
  const rows = tableRows(scenarios)
  const caption = `${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${processes} process(es) per service, ${CONNECTIONS} connections, generator on the same machine`
  process.stdout.write(`\n${caption}\n\n${textTable(rows)}\n\n${markdownTable(rows)}\n`)
  mkdirSync(resultsDir, { recursive: true })
  const json = JSON.stringify({ date: new Date().toISOString(), machine, flags, scenarios }, null, 2) + '\n'
  writeFileSync(`${resultsDir}${stamp}.json`, json)
  writeFileSync(`${resultsDir}latest.json`, json)
  writeFileSync(`${resultsDir}${processes > 1 ? `latest-${processes}-processes` : 'latest'}.svg`, chartSvg(scenarios, caption))
  log(`results in bench/results/${stamp}.json (and latest.json)`)
}
if (profileDir !== undefined) {
  for (const service of readdirSync(profileDir)) {
    for (const file of readdirSync(`${profileDir}${service}`).filter((name) => name.endsWith('.cpuprofile'))) {
      process.stdout.write(`\n${service} (${file}), top self time:\n${summarizeProfile(`${profileDir}${service}/${file}`, 25)}\n`)
    }
  }
}
process.exit(exitCode)
