import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ErrorResponseSchema, isBatonError, TokenResponseSchema } from '@baton/tokens'
import { authenticateClient } from '../../core/clients/client-auth.js'
import { grantFor } from '../../core/grants/index.js'
import type { IssuedTokens, TokenParameters } from '../../core/grants/grant.js'
import { CookieRequestHeadersSchema, noStore, requestContext } from '../route-helpers.js'
import { cookieTokenRequest, deliverTokens } from '../refresh-cookie.js'

const field = (maxLength: number, description: string) => Type.Optional(Type.String({ maxLength, description }))

const TokenRequestSchema = Type.Object({
  grant_type: Type.String({ maxLength: 64, description: '`password`, `refresh_token` or `client_credentials`' }),
  username: field(256, 'password grant'),
  password: field(1024, 'password grant'),
  refresh_token: field(512, 'refresh_token grant: the latest refresh token; it is spent by this request. Sent again within `REFRESH_REUSE_GRACE` from the same address and user agent, it returns the same successor (at most `REFRESH_GRACE_RETRIES` times); from another address or user agent, or later, it revokes the session. A cookie-mode client sends none: its refresh token travels in its cookie'),
  scope: field(2048, 'Space-delimited; may only narrow what the user, client or session is allowed'),
  client_id: field(128, 'A public client\'s id, or a confidential client\'s with client_secret_post; default: the built-in client `baton`'),
  client_secret: field(512, 'client_secret_post'),
  device_token: field(128, 'password grant: the `device_token` of an earlier login to this account; its failed logins then count against a budget of its own, which other clients cannot lock')
})

const TokenRequestHeadersSchema = Type.Object({
  ...CookieRequestHeadersSchema.properties,
  // No maxLength: a proof too long is refused as invalid_dpop_proof, like any other bad proof.
  dpop: Type.Optional(Type.String({ description: 'A DPoP proof (RFC 9449 §4) for `POST` and this endpoint\'s URL (`ISSUER` + `/oauth/token`): the tokens issued are bound to its key. Required for clients registered with `dpop_bound_access_tokens`, and for refreshing a session whose login carried one' }))
})

/** RFC 6749 token endpoint: authenticate the client, pick the grant its request names, answer what the grant returns. */
export default async function tokenRoutes (app: FastifyInstance): Promise<void> {
  app.addHook('onSend', noStore)
  // RFC 9449 §8.2: every answer, errors included, carries the nonce the next proof should hold.
  app.addHook('onSend', async (_request, reply) => {
    let nonce: string | undefined
    try {
      nonce = app.auth.dpop.nonce()
    } catch (error) {
      // Before the secret has loaded there is no nonce to give; the answer (a 503, most likely) goes out without one.
      if (!isBatonError(error)) throw error
    }
    if (nonce !== undefined) reply.header('dpop-nonce', nonce)
  })
  app.withTypeProvider<TypeBoxTypeProvider>().post('/oauth/token', {
    schema: {
      description: 'RFC 6749 token endpoint: password, refresh_token and client_credentials grants. Answers carry `Cache-Control: no-store`. The password grant is rate limited per account and per client IP: `429 slow_down` with `Retry-After` (seconds), whatever the password. A client that logged in to the account before (its `device_token`, or the address of a successful login) has a failure budget of its own that other clients cannot lock.\n\n' +
        'A cookie-mode client (`refresh_token_delivery: cookie`) gets its refresh token only in the cookie `__Host-baton-refresh-<client_id>` (HttpOnly, Secure, SameSite=Strict, Path=/, Max-Age: the session\'s remaining lifetime), never in the body; the refresh grant reads it from that cookie (`400 invalid_grant` without one) and refuses one in the body. Each of its requests must carry an `Origin` the client allows and the `X-Baton-Client` header, else `403 invalid_request` and nothing happens. An `invalid_grant` answer to its refresh grant (spent, revoked or expired session) clears the cookie.\n\n' +
        'DPoP (RFC 9449): with a `DPoP` proof header the answer is `token_type: DPoP`, the access token carries `cnf.jkt`, and the session is bound to the proof\'s key: its refreshes need a proof of that key, and its refresh token without one, or with another key\'s, ends the session (`400 invalid_grant`). A bad proof gets `400 invalid_dpop_proof` and changes nothing. With `DPOP_NONCE=required` every answer carries a `DPoP-Nonce` header, and a proof without a current nonce gets `400 use_dpop_nonce`.',
      tags: ['oauth'],
      // Anonymous means a public client (client_id in the body, or none: `baton`) or client_secret_post.
      security: [{}, { clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: TokenRequestSchema,
      headers: TokenRequestHeadersSchema,
      response: { 200: TokenResponseSchema, '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    const client = authenticateClient(request.headers.authorization, request.body, app.auth.clients)
    const grant = grantFor(app.auth.grants, request.body.grant_type, client)
    const context = requestContext(request, client.client_id)
    // The proof is checked (and its jti stored) only once a cookie-mode request passed its CSRF check.
    const issue = async (params: TokenParameters): Promise<IssuedTokens> => {
      const proof = await app.auth.dpop.check(request.headers.dpop, client, request.body.grant_type, context.events)
      return await grant(client, params, { ...context, dpopJkt: proof?.jkt })
    }
    if (client.refreshTokenDelivery === 'cookie') return await cookieTokenRequest(request, reply, client, request.body, issue)
    return deliverTokens(reply, client, await issue(request.body))
  })
}
