import Fastify from 'fastify'
import { verifierPlugin } from '@baton/verifier/fastify'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'

const app = Fastify({ logger: true })
await app.register(verifierPlugin, {
  issuer,
  audience: 'baton-api',
  jwksUri: `${issuer}/.well-known/jwks.json`
})

// request.auth holds the token's claims once a hook has admitted it.
app.get('/me', { onRequest: app.authenticate }, async (request) => {
  return { sub: request.auth.sub, scope: request.auth.scope }
})
app.get('/reports', { onRequest: app.requireScope('reports:read') }, async () => {
  return { reports: [] }
})

await app.listen({ port: Number(process.env.PORT ?? 3003) })
