// The verify peer: what a Fastify user would write instead of Baton's
// verifier, @fastify/jwt verifying EdDSA access tokens with fast-jwt's
// verification cache, behind the services' own Fastify and logger options.
// It trusts the auth-service's key (JWKS_URL, read once at start) and its
// issuer (ISSUER); PORT and LOG_LEVEL come from the environment.
import { createPublicKey } from 'node:crypto'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { AccessLogController, loggerOptions } from '@baton/service-kit'

const { keys } = await (await fetch(process.env.JWKS_URL)).json()
const app = Fastify({
  logger: loggerOptions(process.env.LOG_LEVEL ?? 'info'),
  logController: new AccessLogController(),
  return503OnClosing: true,
  forceCloseConnections: 'idle'
})
await app.register(fastifyJwt, {
  secret: { public: createPublicKey({ key: keys[0], format: 'jwk' }).export({ format: 'pem', type: 'spki' }) },
  // fast-jwt's cache holds 1,000 verified tokens by default: as many as the scenario sends.
  verify: { algorithms: ['EdDSA'], allowedIss: process.env.ISSUER, cache: true }
})
app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
app.get('/me', { onRequest: async (request) => { await request.jwtVerify() } }, async (request) => {
  const { sub, username, scope, sid, exp } = request.user
  return { sub, username, scope, sid, exp }
})
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
