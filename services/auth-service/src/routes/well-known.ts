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

/** How long verifiers may cache the key set; a new key is published at least this long before it signs. */
export const JWKS_MAX_AGE_SECONDS = 300

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
    reply.header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
    return { keys: app.keyring.all().map((key) => key.publicJwk) }
  })
}
