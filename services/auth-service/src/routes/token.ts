import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { BatonError, ErrorResponseSchema, TokenResponseSchema, formatScope, isSubsetOf, parseScope, type TokenResponse } from '@baton/tokens'
import { authenticateClient } from '../core/clients/client-auth.js'
import type { ClientConfig, GrantType } from '../core/clients/clients.js'
import type { RequestContext, RotateOutcome, SessionTokens } from '../core/sessions/session-store.js'
import type { RefreshOutcome } from '../auth-metrics.js'
import { admitted, audit } from '../audit.js'

const field = (maxLength: number, description: string) => Type.Optional(Type.String({ maxLength, description }))

const TokenRequestSchema = Type.Object({
  grant_type: Type.String({ maxLength: 64, description: '`password`, `refresh_token` or `client_credentials`' }),
  username: field(256, 'password grant'),
  password: field(1024, 'password grant'),
  refresh_token: field(512, 'refresh_token grant: the latest refresh token; it is spent by this request. Sent again within `REFRESH_REUSE_GRACE` from the same address and user agent, it returns the same successor (at most `REFRESH_GRACE_RETRIES` times); from another address or user agent, or later, it revokes the session'),
  scope: field(2048, 'Space-delimited; may only narrow what the user, client or session is allowed'),
  client_id: field(128, 'A public client\'s id, or a confidential client\'s with client_secret_post; default: the built-in client `baton`'),
  client_secret: field(512, 'client_secret_post'),
  device_token: field(128, 'password grant: the `device_token` of an earlier login to this account; its failed logins then count against a budget of its own, which other clients cannot lock')
})
type TokenRequest = Static<typeof TokenRequestSchema>

const INVALID_CREDENTIALS = 'invalid username or password'

const REFRESH_OUTCOMES: Record<RotateOutcome['outcome'], RefreshOutcome> = {
  rotated: 'rotated',
  grace_retry: 'grace_retry',
  reuse_detected: 'reuse_detected',
  expired: 'expired',
  invalid_scope: 'invalid_scope',
  grace_exhausted: 'grace_exhausted',
  malformed: 'invalid',
  unknown: 'invalid',
  wrong_client: 'invalid'
}

export function requestContext (request: FastifyRequest, client: ClientConfig): RequestContext {
  const userAgent = request.headers['user-agent']
  return { clientId: client.client_id, userAgent: typeof userAgent === 'string' ? userAgent : '', ip: request.ip }
}

/** The scope a token gets: what was asked for, if it is within what is allowed; else all that is allowed. */
function grantScope (requested: string | undefined, allowed: readonly string[]): string[] {
  if (requested === undefined) return [...allowed]
  const scopes = parseScope(requested)
  if (scopes === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
  if (!isSubsetOf(scopes, allowed)) throw new BatonError('BATON_INVALID_SCOPE', 'scope exceeds what is allowed')
  return scopes
}

function noStore (reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
}

export default async function tokenRoutes (app: FastifyInstance): Promise<void> {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  // A retry inside the grace window gets a new access token but the successor already issued.
  function tokenResponse (grant: GrantType, tokens: SessionTokens, client: ClientConfig, scope: string, newRefreshToken = true): TokenResponse {
    const access = app.accessTokens.issue({ sub: tokens.uid, clientId: client.client_id, scope, sid: tokens.sid, username: tokens.username })
    app.authMetrics.issued(grant, 'access_token')
    if (newRefreshToken) app.authMetrics.issued(grant, 'refresh_token')
    return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, refresh_token: tokens.refreshToken, scope }
  }

  function accountLocked (request: FastifyRequest, uid: string, client: ClientConfig): never {
    audit(request, 'login.failed', { user: uid, client_id: client.client_id, reason: 'account_locked' })
    throw new BatonError('BATON_INVALID_GRANT', 'the account is locked; ask an administrator')
  }

  async function passwordGrant (request: FastifyRequest, body: TokenRequest, client: ClientConfig): Promise<TokenResponse> {
    if (body.username === undefined || body.password === undefined) {
      throw new BatonError('BATON_INVALID_REQUEST', 'username and password are required')
    }
    // Parse the scope before hashing: a malformed request should not cost a hash.
    if (body.scope !== undefined && parseScope(body.scope) === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
    const attempt = await admitted(request, 'login.locked', app.limits.admitLogin(request.ip, body.username, body.device_token), { client_id: client.client_id })
    const user = await app.users.findByUsername(body.username)
    const valid = user === undefined
      ? await app.passwords.verifyDummy(body.password)
      : await app.passwords.verify(user.passwordHash, body.password)
    if (user === undefined || !valid) {
      audit(request, 'login.failed', { user: user?.id, client_id: client.client_id, reason: user === undefined ? 'unknown_user' : 'wrong_password' })
      throw new BatonError('BATON_INVALID_GRANT', INVALID_CREDENTIALS)
    }
    await attempt.succeeded()
    if (user.lockedAt !== undefined) accountLocked(request, user.id, client)
    const allowed = client.scope === undefined ? user.scopes : user.scopes.filter((scope) => client.scope!.includes(scope))
    const scope = formatScope(grantScope(body.scope, allowed))
    const session = await app.sessions.create({ uid: user.id, username: user.username, scope, credentialVersion: user.credentialVersion }, requestContext(request, client))
    if (session === undefined) {
      // The password was changed, or every session ended, while this one was being verified.
      audit(request, 'login.failed', { user: user.id, client_id: client.client_id, reason: 'credential_changed' })
      throw new BatonError('BATON_INVALID_GRANT', 'the password or the sessions changed while signing in; sign in again')
    }
    audit(request, 'login.succeeded', { user: user.id, sid: session.sid, client_id: client.client_id, sessions_evicted: session.evicted.length })
    return { ...tokenResponse('password', session, client, scope), device_token: attempt.deviceToken() }
  }

  async function refreshGrant (request: FastifyRequest, body: TokenRequest, client: ClientConfig): Promise<TokenResponse> {
    if (body.refresh_token === undefined) throw new BatonError('BATON_INVALID_REQUEST', 'refresh_token is required')
    let requested = ''
    if (body.scope !== undefined) {
      const scopes = parseScope(body.scope)
      if (scopes === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
      requested = formatScope(scopes)
    }
    const context = requestContext(request, client)
    const result = await app.sessions.rotate(body.refresh_token, context, requested)
    app.authMetrics.refreshed(REFRESH_OUTCOMES[result.outcome])
    switch (result.outcome) {
      case 'rotated':
      case 'grace_retry':
        if (result.outcome === 'grace_retry') audit(request, 'refresh.grace_retry', { user: result.uid, sid: result.sid, client_id: client.client_id })
        return tokenResponse('refresh_token', result, client, requested === '' ? result.scope : requested, result.outcome === 'rotated')
      case 'reuse_detected':
        audit(request, 'refresh.reuse_detected', { user: result.uid, sid: result.sid, client_id: client.client_id, reason: result.reason })
        audit(request, 'session.revoked', { user: result.uid, sid: result.sid, client_id: client.client_id, reason: 'refresh_token_reuse' })
        throw new BatonError('BATON_INVALID_GRANT', 'refresh token was already used; the session is revoked')
      case 'grace_exhausted':
        audit(request, 'refresh.grace_exhausted', { user: result.uid, sid: result.sid, client_id: client.client_id })
        throw new BatonError('BATON_INVALID_GRANT', 'refresh token was already used and retried too often; use the refresh token an earlier answer returned')
      case 'invalid_scope':
        throw new BatonError('BATON_INVALID_SCOPE', 'scope exceeds the session\'s scope')
      case 'expired':
        throw new BatonError('BATON_INVALID_GRANT', 'the session has expired')
      default:
        throw new BatonError('BATON_INVALID_GRANT', 'refresh token is not valid')
    }
  }

  function clientCredentialsGrant (body: TokenRequest, client: ClientConfig): TokenResponse {
    const scope = formatScope(grantScope(body.scope, client.scope ?? []))
    const access = app.accessTokens.issue({ sub: client.client_id, clientId: client.client_id, scope })
    app.authMetrics.issued('client_credentials', 'access_token')
    return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope }
  }

  server.post('/oauth/token', {
    schema: {
      description: 'RFC 6749 token endpoint: password, refresh_token and client_credentials grants. Answers carry `Cache-Control: no-store`. The password grant is rate limited per account and per client IP: `429 slow_down` with `Retry-After` (seconds), whatever the password. A client that logged in to the account before (its `device_token`, or the address of a successful login) has a failure budget of its own that other clients cannot lock.',
      tags: ['oauth'],
      // Anonymous means a public client (client_id in the body, or none: `baton`) or client_secret_post.
      security: [{}, { clientBasic: [] }],
      consumes: ['application/x-www-form-urlencoded', 'application/json'],
      body: TokenRequestSchema,
      response: { 200: TokenResponseSchema, '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    noStore(reply)
    const body = request.body
    const client = authenticateClient(request.headers.authorization, body, app.clients)
    const grant = body.grant_type as GrantType
    if (!['password', 'refresh_token', 'client_credentials'].includes(grant)) {
      throw new BatonError('BATON_UNSUPPORTED_GRANT_TYPE', 'grant_type is not supported')
    }
    if (!client.grant_types.includes(grant)) {
      throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the client may not use this grant type')
    }
    if (grant === 'password') return await passwordGrant(request, body, client)
    if (grant === 'refresh_token') return await refreshGrant(request, body, client)
    return clientCredentialsGrant(body, client)
  })
}
