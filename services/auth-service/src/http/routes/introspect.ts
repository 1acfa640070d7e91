import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { authenticateClient } from '../../core/clients/client-auth.js'
import { TokenParameterSchema, liveAccessToken, looksLikeJwt, noStore } from '../route-helpers.js'

const IntrospectionResponseSchema = Type.Object({
  active: Type.Boolean(),
  token_type: Type.Optional(Type.String({ description: '`Bearer` or `DPoP` (bound to a key) for access tokens, `refresh_token` for refresh tokens' })),
  sub: Type.Optional(Type.String()),
  scope: Type.Optional(Type.String()),
  client_id: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  exp: Type.Optional(Type.Integer()),
  iat: Type.Optional(Type.Integer()),
  jti: Type.Optional(Type.String()),
  sid: Type.Optional(Type.String()),
  iss: Type.Optional(Type.String()),
  aud: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  cnf: Type.Optional(Type.Object({ jkt: Type.String() }, { description: 'RFC 9449 §6.2: the thumbprint of the DPoP key the token is bound to' }))
})

export default async function introspectRoutes (app: FastifyInstance): Promise<void> {
  app.addHook('onSend', noStore)
  app.withTypeProvider<TypeBoxTypeProvider>().post('/oauth/introspect', {
    schema: {
      description: 'RFC 7662 token introspection, for confidential clients marked `"introspection": true` in `CLIENTS` (resource servers): `active` is false for expired, revoked, unknown and foreign tokens. Another confidential client gets `403 unauthorized_client`; a public or unauthenticated one `401 invalid_client`.',
      tags: ['oauth'],
      // client_secret_post, with the credentials in the body, is accepted as well.
      security: [{ clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: TokenParameterSchema,
      response: { 200: IntrospectionResponseSchema, '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request) => {
    const client = authenticateClient(request.headers.authorization, request.body, app.auth.clients)
    // RFC 7662 §2.1: the endpoint must not become an oracle for anyone who asks.
    if (client.secretHash === undefined) throw new BatonError('BATON_INVALID_CLIENT', 'introspection needs client authentication')
    // RFC 7662 §4: only the resource servers the operator marked may read whose token it is.
    if (!client.introspection) throw new BatonError('BATON_CLIENT_NOT_ALLOWED', 'this client may not introspect tokens')
    const { token } = request.body

    if (!looksLikeJwt(token)) {
      const session = await app.auth.sessions.introspectRefreshToken(token)
      if (session === undefined) return { active: false }
      return {
        active: true,
        token_type: 'refresh_token',
        sub: session.uid,
        scope: session.scope,
        client_id: session.clientId,
        username: session.username,
        exp: session.exp,
        iat: session.iat,
        sid: session.sid,
        iss: app.config.ISSUER,
        ...(session.jkt === undefined ? {} : { cnf: { jkt: session.jkt } })
      }
    }

    const claims = await liveAccessToken(app, token)
    if (claims === undefined) return { active: false }
    return {
      active: true,
      token_type: claims.cnf === undefined ? 'Bearer' : 'DPoP',
      sub: claims.sub,
      scope: claims.scope,
      client_id: claims.client_id,
      ...(claims.username === undefined ? {} : { username: claims.username }),
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      ...(claims.sid === undefined ? {} : { sid: claims.sid }),
      iss: claims.iss,
      aud: claims.aud,
      ...(claims.cnf === undefined ? {} : { cnf: { jkt: claims.cnf.jkt } })
    }
  })
}
