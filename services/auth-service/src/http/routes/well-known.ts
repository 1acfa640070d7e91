import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

const JwkSchema = Type.Object({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  y: Type.Optional(Type.String()),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.Literal('sig')
})

export default async function wellKnownRoutes (app: FastifyInstance): Promise<void> {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/.well-known/jwks.json', {
    schema: {
      description: 'The public signing keys (RFC 7517); never a private part',
      tags: ['discovery'],
      // The response schema is an allow-list: whatever else a key object holds is not serialized.
      response: { 200: Type.Object({ keys: Type.Array(JwkSchema) }) }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    // JWKS_MAX_AGE: verifiers may cache this long; a new key is published KEY_PUBLISH_AHEAD (longer) before it signs.
    reply.header('cache-control', `public, max-age=${app.config.JWKS_MAX_AGE}`)
    return { keys: app.keyring.all().map((key) => key.publicJwk) }
  })
}
