// The references the scenarios are measured against: what the same work
// costs in a bare Fastify app with the services' own Fastify and logger
// options and request logging, without Baton. PORT, REDIS_URL and LOG_LEVEL come from the environment.
//   GET  /me       the JSON the resource-service's /me answers, no authentication
//   POST /rotate   the minimal rotation: one EVALSHA round trip to Redis (a read and a write of one hash)
//                  and one Ed25519-signed JWT of the access token's claims, what a rotation cannot do without
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { AccessLogController, loggerOptions } from '@baton/service-kit'

const ME = { sub: 'k3Jm0bX9c2VvWlq1Zp8d4A', username: 'bench-user-1', scope: 'profile', sid: 'Q2xZ8m1nV0bC4dR7tY5uWg', exp: 1_900_000_000 }
const TOUCH = `
redis.call('HSET', KEYS[1], 'cur', ARGV[1])
redis.call('PEXPIRE', KEYS[1], 600000)
return redis.call('HGET', KEYS[1], 'cur')`
const { privateKey } = generateKeyPairSync('ed25519')
const HEADER = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: 'reference' })).toString('base64url')

/** The access token a rotation answers: Baton's claim set, signed once. */
function accessToken (sub) {
  const iat = Math.floor(Date.now() / 1000)
  const claims = { iss: 'http://127.0.0.1', sub, aud: 'baton', exp: iat + 900, iat, jti: randomBytes(16).toString('base64url'), client_id: 'baton', scope: 'profile', sid: sub, username: 'bench-user' }
  const input = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`
}

const app = Fastify({
  logger: loggerOptions(process.env.LOG_LEVEL ?? 'info'),
  bodyLimit: 16_384,
  logController: new AccessLogController(),
  return503OnClosing: true,
  forceCloseConnections: 'idle',
  http: { maxHeaderSize: 16_384 }
})
app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
app.get('/me', async () => ME)

let redis
if (process.env.REDIS_URL !== undefined) {
  // The auth-service's own client settings that matter under load.
  redis = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 0, enableAutoPipelining: true })
  redis.defineCommand('touch', { numberOfKeys: 1, lua: TOUCH })
  app.post('/rotate', async (request) => {
    const token = typeof request.body?.refresh_token === 'string' ? request.body.refresh_token : ''
    const value = await redis.touch(`bench-reference:${token.slice(0, 16)}`, token)
    return { access_token: accessToken(token.slice(0, 22)), token_type: 'Bearer', expires_in: 900, refresh_token: value, scope: 'profile' }
  })
  app.addHook('onClose', async () => { await redis.quit() })
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
