import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { authenticateClient } from '../../core/clients/client-auth.js'
import type { ClientConfig } from '../../core/clients/clients.js'
import { CookieRequestHeadersSchema, TokenParameterSchema, eventsOf, liveAccessToken, looksLikeJwt, noStore } from '../route-helpers.js'
import { checkCookieRequest, clearRefreshCookie, refreshTokenFromCookie } from '../refresh-cookie.js'

// RFC 7009 requires `token`; a cookie-mode client sends none to revoke the refresh token in its cookie.
const RevocationRequestSchema = Type.Object({
  ...TokenParameterSchema.properties,
  token: Type.Optional(Type.String({ ...TokenParameterSchema.properties.token, description: 'The refresh or access token to revoke. Required, except from a cookie-mode client, which sends none to revoke the refresh token in its cookie (that is its logout) and may not send a refresh token here' }))
})

/**
 * The token a request revokes: the body's, or a cookie-mode client's cookie
 * (`fromCookie`). A cookie-mode client's request is refused unless a page of
 * its origins sent it.
 */
function tokenToRevoke (request: FastifyRequest, client: ClientConfig, token: string | undefined): { token: string | undefined, fromCookie: boolean } {
  if (client.refreshTokenDelivery === 'body') {
    if (token === undefined) throw new BatonError('BATON_INVALID_REQUEST', 'token is required')
    return { token, fromCookie: false }
  }
  checkCookieRequest(request, client)
  if (token !== undefined) {
    if (!looksLikeJwt(token)) throw new BatonError('BATON_INVALID_REQUEST', 'this client\'s refresh token travels in its cookie: send no token to revoke it')
    return { token, fromCookie: false }
  }
  return { token: refreshTokenFromCookie(request, client), fromCookie: true }
}

export default async function revokeRoutes (app: FastifyInstance): Promise<void> {
  app.addHook('onSend', noStore)
  app.withTypeProvider<TypeBoxTypeProvider>().post('/oauth/revoke', {
    schema: {
      description: 'RFC 7009 token revocation: a refresh token ends its whole session; an access token is refused from now on wherever revocation is checked. Unknown tokens get 200 too. ' +
        'A cookie-mode client sends no `token` to end the session of the refresh token in its cookie (its logout), with an allowed `Origin` and the `X-Baton-Client` header (else `403 invalid_request`); the answer clears the cookie.',
      tags: ['oauth'],
      security: [{}, { clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: RevocationRequestSchema,
      headers: CookieRequestHeadersSchema,
      response: { 200: Type.Object({}), '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    const client = authenticateClient(request.headers.authorization, request.body, app.auth.clients)
    const { token, fromCookie } = tokenToRevoke(request, client, request.body.token)
    if (token === undefined) {
      if (fromCookie) clearRefreshCookie(reply, client)
      return {}
    }

    if (!looksLikeJwt(token)) {
      const { outcome, uid, sid } = await app.auth.sessions.revokeByRefreshToken(token, client.client_id)
      // A logout clears the cookie whatever its token turned out to be, but only once Redis took the
      // revocation: after a 503 the browser keeps the cookie, so the client's retry can still end the session.
      if (fromCookie) clearRefreshCookie(reply, client)
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
