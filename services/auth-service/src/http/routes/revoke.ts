import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { authenticateClient } from '../../core/clients/client-auth.js'
import { TokenParameterSchema, eventsOf, liveAccessToken, looksLikeJwt, noStore } from '../route-helpers.js'

export default async function revokeRoutes (app: FastifyInstance): Promise<void> {
  app.addHook('onSend', noStore)
  app.withTypeProvider<TypeBoxTypeProvider>().post('/oauth/revoke', {
    schema: {
      description: 'RFC 7009 token revocation: a refresh token ends its whole session; an access token is refused from now on wherever revocation is checked. Unknown tokens get 200 too.',
      tags: ['oauth'],
      security: [{}, { clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: TokenParameterSchema,
      response: { 200: Type.Object({}), '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request) => {
    const client = authenticateClient(request.headers.authorization, request.body, app.auth.clients)
    const { token } = request.body

    if (!looksLikeJwt(token)) {
      const { outcome, uid, sid } = await app.auth.sessions.revokeByRefreshToken(token, client.client_id)
      if (outcome === 'other_client') throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the token was issued to another client')
      if (outcome === 'revoked') eventsOf(request).audit('session.revoked', { user: uid, sid, client_id: client.client_id, reason: 'revocation_endpoint' })
      return {}
    }

    const claims = await liveAccessToken(app, token)
    if (claims === undefined) return {}
    if (claims.client_id !== client.client_id) throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the token was issued to another client')
    await app.auth.sessions.revokeAccessToken(claims.sub, claims.jti, claims.exp, app.config.CLOCK_SKEW)
    eventsOf(request).audit('access_token.revoked', { user: claims.sub, sid: claims.sid, client_id: client.client_id, jti: claims.jti })
    return {}
  })
}
