// node bench/refresh-stages.mjs
//
// A per-stage budget of one refresh, in microseconds of CPU on this
// machine: each stage of the auth-service's refresh path run alone, with the
// service's own code where it is a library (codec, signer, client
// authentication, metrics, logger) and the libraries the service uses where
// it is framework (body parsing, serialisation). Each stage runs in batches;
// the fastest batch counts, since on a shared machine a slower one measures
// the other tenants. The Lua stage is the client's round trip to an idle
// private redis-server, one call at a time (so it is mostly waiting, not
// CPU); bench/redis-rotation.mjs gives Redis's own CPU per rotation.
import { createHash, generateKeyPairSync, sign } from 'node:crypto'
import { parse as parseQuery } from 'node:querystring'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { Histogram, Counter, Registry } from 'prom-client'
import { startRedis } from '@baton/test-redis'
import { AccessLogController, loggerOptions } from '@baton/service-kit'
import { RefreshTokenCodec, SessionStore, defineScripts, randomId, redisKeys } from '@baton/auth-service/core'

const service = (path) => new URL(`../services/auth-service/dist/${path}`, import.meta.url).href
const { sealSuccessor } = await import(service('core/sessions/refresh-token-codec.js'))
const { signingKeyFromPem } = await import(service('core/keys/signing-key.js'))
const { authenticateClient } = await import(service('core/clients/client-auth.js'))

const BATCHES = 15
const PER_BATCH = 2000

/** Microseconds per call of `fn`: the fastest of BATCHES batches. */
async function time (fn) {
  let best = Infinity
  for (let batch = 0; batch < BATCHES; batch++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < PER_BATCH; i++) await fn(i)
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / PER_BATCH)
  }
  return best
}
function timeSync (fn) {
  let best = Infinity
  for (let batch = 0; batch < BATCHES; batch++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < PER_BATCH; i++) fn(i)
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / PER_BATCH)
  }
  return best
}

const secret = randomId() + randomId()
const codec = new RefreshTokenCodec(secret)
const tokens = Array.from({ length: PER_BATCH }, () => codec.issue(randomId(), randomId()).token)
const jsonBody = tokens.map((token) => JSON.stringify({ grant_type: 'refresh_token', refresh_token: token }))
const formBody = tokens.map((token) => `grant_type=refresh_token&refresh_token=${token}&client_id=web`)
const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const key = signingKeyFromPem(pem)
const rawKey = generateKeyPairSync('ed25519').privateKey
const claims = () => ({ iss: 'http://127.0.0.1:3000', sub: randomId(), aud: 'baton', exp: 1_900_000_000, iat: 1_899_999_100, jti: randomId(), client_id: 'baton', scope: 'profile', sid: randomId(), username: 'bench-user-1' })
const clients = new Map([
  ['baton', { client_id: 'baton' }],
  ['web', { client_id: 'web' }],
  ['backend', { client_id: 'backend', secretHash: createHash('sha256').update('backend secret, long enough to count').digest() }]
])
const basic = `Basic ${Buffer.from('backend:backend secret, long enough to count').toString('base64')}`

const stages = []
const stage = (name, micros, note = '') => { stages.push({ name, micros, note }) }

stage('body parsing: JSON', timeSync((i) => JSON.parse(jsonBody[i])))
stage('body parsing: form', timeSync((i) => parseQuery(formBody[i])))
stage('client authentication: public client', timeSync(() => authenticateClient(undefined, {}, clients)))
stage('client authentication: Basic secret', timeSync(() => authenticateClient(basic, {}, clients)), 'SHA-256 and a constant-time compare')
stage('codec: parse presented token', timeSync((i) => codec.parse(tokens[i])), 'MAC check, hash')
stage('codec: issue successor', timeSync(() => codec.issue(randomId(), randomId())))
const parsed = codec.parse(tokens[0])
stage('codec: seal successor', timeSync(() => sealSuccessor(tokens[1], parsed.secret, parsed.sid)), 'HKDF + AES-GCM')
stage('signing: keyring (fast-jwt EdDSA)', timeSync(() => key.sign(claims())))
const header = Buffer.from('{"alg":"EdDSA","typ":"at+jwt","kid":"k"}').toString('base64url')
stage('signing: bare crypto.sign Ed25519', timeSync(() => {
  const input = `${header}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}`
  return sign(null, Buffer.from(input), rawKey).toString('base64url')
}), 'the floor for a signed JWT')
const response = { access_token: key.sign(claims()), token_type: 'Bearer', expires_in: 900, refresh_token: tokens[0], scope: 'profile' }
stage('serialisation: JSON.stringify of the answer', timeSync(() => JSON.stringify(response)))

// Logging: the access line and a Fastify child logger, as the service writes them, to /dev/null through the buffered destination.
const destination = pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 })
const logger = pino({ ...loggerOptions('info', { service: 'auth-service', version: '0' }), stream: undefined }, destination)
const controller = new AccessLogController()
const fakeRequest = (log) => ({ id: 'req-1', method: 'POST', url: '/oauth/token', ip: '127.0.0.1', headers: { 'user-agent': 'autocannon' }, log, server: { log: logger } })
const fakeReply = { statusCode: 200, elapsedTime: 1.25 }
stage('logging: request child logger', timeSync((i) => logger.child({ reqId: `req-${i}` })), 'Fastify makes one per request, at any level')
const child = logger.child({ reqId: 'req-1' })
stage('logging: access line (info)', timeSync(() => controller.requestCompleted(null, fakeRequest(child), fakeReply)))
stage('audit: one audit line', timeSync(() => logger.info({ event: 'refresh.grace_retry', user: 'u', sid: 's', client_id: 'baton' }, 'audit')), 'only for grace retries and reuse, not a plain rotation')

const registry = new Registry()
const http = new Histogram({ name: 'http', help: 'h', labelNames: ['method', 'route', 'status'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] })
const redisHistogram = new Histogram({ name: 'redis', help: 'h', labelNames: ['command'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1], registers: [registry] })
const counter = new Counter({ name: 'c', help: 'c', labelNames: ['grant', 'type'], registers: [registry] })
const refreshes = new Counter({ name: 'r', help: 'r', labelNames: ['outcome'], registers: [registry] })
stage('metrics: what a rotation records', timeSync(() => {
  http.observe({ method: 'POST', route: '/oauth/token', status: '200' }, 0.0012)
  redisHistogram.observe({ command: 'rotate-refresh' }, 0.0004)
  counter.inc({ grant: 'refresh_token', type: 'access_token' })
  counter.inc({ grant: 'refresh_token', type: 'refresh_token' })
  refreshes.inc({ outcome: 'rotated' })
}), 'HTTP and Redis histograms, three counters')

const redis = await startRedis({ extraArgs: ['--save', '', '--appendonly', 'no'] })
const client = new Redis(redis.url, { enableAutoPipelining: true })
try {
  defineScripts(client)
  const sessions = new SessionStore(client, redisKeys('baton:'), codec, { idleMs: 86_400_000, absoluteMs: 864_000_000, graceMs: 10_000, graceRetries: 5, maxSessionsPerUser: 100 }, Date.now)
  const context = { clientId: 'baton', userAgent: 'autocannon', ip: '127.0.0.1' }
  let current = (await sessions.create({ uid: randomId(), username: 'stage', scope: 'profile', credentialVersion: 0 }, context)).refreshToken
  stage('Lua: SessionStore.rotate, one at a time', await time(async () => {
    const outcome = await sessions.rotate(current, context)
    if (outcome.outcome !== 'rotated') throw new Error(outcome.outcome)
    current = outcome.refreshToken
  }), 'codec + EVALSHA round trip + ioredis; mostly waiting')
  stage('Lua: a bare EVALSHA round trip', await time(async () => await client.eval('return 1', 0)), 'ioredis and the loopback, no script work')
} finally {
  client.disconnect()
  await redis.stop()
}
process.stdout.write(`Stages of a refresh, µs (fastest of ${BATCHES} batches of ${PER_BATCH}), Node ${process.version}\n`)
for (const { name, micros, note } of stages) process.stdout.write(`${micros.toFixed(1).padStart(8)}  ${name}${note === '' ? '' : `  (${note})`}\n`)
