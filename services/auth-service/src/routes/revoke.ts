import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema, isBatonError, type AccessTokenClaims } from '@baton/tokens'
import { authenticateClient } from '../core/clients/client-auth.js'
import { audit } from '../audit.js'

/** The body of RFC 7009 revocation and RFC 7662 introspection requests. */
export const TokenParameterSchema = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 8192 }),
  // RFC 7009 §2.1: only a hint; an unknown hint just widens the search.
  token_type_hint: Type.Optional(Type.String({ maxLength: 64 })),
  client_id: Type.Optional(Type.String({ maxLength: 128 })),
  client_secret: Type.Optional(Type.String({ maxLength: 512 }))
})

/** JWS compact serialization has two dots; Baton's refresh tokens have none. */
export function looksLikeJwt (token: string): boolean {
  return token.split('.').length === 3
}

/** A valid, live access token's claims, or undefined for anything that is not one. */
export async function liveAccessToken (app: FastifyInstance, token: string): Promise<AccessTokenClaims | undefined> {
  try {
    return await app.verifyAccessToken(token)
  } catch (error) {
    // Storage trouble is not "inactive": let the caller see the 503.
    if (isBatonError(error) && error.code === 'BATON_UNAVAILABLE') throw error
    return undefined
  }
}

export default async function revokeRoutes (app: FastifyInstance): Promise<void> {
  app.withTypeProvider<TypeBoxTypeProvider>().post('/oauth/revoke', {
    schema: {
      description: 'RFC 7009 token revocation: a refresh token ends its whole session; an access token is refused from now on wherever revocation is checked. Unknown tokens get 200 too.',
      tags: ['oauth'],
      security: [{}, { clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: TokenParameterSchema,
      response: { 200: Type.Object({}), '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const client = authenticateClient(request.headers.authorization, request.body, app.clients)
    const { token } = request.body

    if (!looksLikeJwt(token)) {
      const { outcome, uid, sid } = await app.sessions.revokeByRefreshToken(token, client.client_id)
      if (outcome === 'other_client') throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the token was issued to another client')
      if (outcome === 'revoked') audit(request, 'session.revoked', { user: uid, sid, client_id: client.client_id, reason: 'revocation_endpoint' })
      return {}
    }

    const claims = await liveAccessToken(app, token)
    if (claims === undefined) return {}
    if (claims.client_id !== client.client_id) throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the token was issued to another client')
    await app.sessions.revokeAccessToken(claims.sub, claims.jti, claims.exp, app.config.CLOCK_SKEW)
    audit(request, 'access_token.revoked', { user: claims.sub, sid: claims.sid, client_id: client.client_id, jti: claims.jti })
    return {}
  })
}
