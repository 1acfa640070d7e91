import { BatonError, isSubsetOf, parseScope, type TokenResponse } from '@baton/tokens'
import type { AccessTokenIssuer } from '../access-tokens.js'
import type { PasswordHasher } from '../accounts/password-hasher.js'
import type { RateLimiter } from '../accounts/rate-limits.js'
import type { UserStore } from '../accounts/user-store.js'
import type { ClientConfig, GrantType } from '../clients/clients.js'
import type { RequestContext } from '../request-context.js'
import type { SessionStore, SessionTokens } from '../sessions/session-store.js'

/** The token request's parameters a grant reads (RFC 6749 §4.3, §6, §4.4; `device_token` is Baton's). */
export interface TokenParameters {
  username?: string
  password?: string
  refresh_token?: string
  scope?: string
  device_token?: string
}

/**
 * One grant type: for a client already authenticated and allowed this grant,
 * the token response, or a BatonError that says why not.
 */
export type Grant = (client: ClientConfig, params: TokenParameters, context: RequestContext) => Promise<TokenResponse>

/** What the grants work with. */
export interface GrantDeps {
  users: UserStore
  passwords: PasswordHasher
  sessions: SessionStore
  limits: RateLimiter
  accessTokens: AccessTokenIssuer
}

/** The scope a token gets: what was asked for, if it is within what is allowed; else all that is allowed. */
export function grantScope (requested: string | undefined, allowed: readonly string[]): string[] {
  if (requested === undefined) return [...allowed]
  const scopes = parseScope(requested)
  if (scopes === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
  if (!isSubsetOf(scopes, allowed)) throw new BatonError('BATON_INVALID_SCOPE', 'scope exceeds what is allowed')
  return scopes
}

/**
 * The answer of a grant that speaks for a session: a new access token and
 * the session's refresh token. A retry inside the grace window gets a new
 * access token but the successor already issued (`newRefreshToken` false).
 */
export function sessionTokenResponse (accessTokens: AccessTokenIssuer, grant: GrantType, tokens: SessionTokens, client: ClientConfig, scope: string, context: RequestContext, newRefreshToken = true): TokenResponse {
  const access = accessTokens.issue({ sub: tokens.uid, clientId: client.client_id, scope, sid: tokens.sid, username: tokens.username })
  context.events.issued(grant, 'access_token')
  if (newRefreshToken) context.events.issued(grant, 'refresh_token')
  return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, refresh_token: tokens.refreshToken, scope }
}
