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
 * What a grant hands out. The refresh token stands apart from the RFC 6749
 * §5.1 answer: whether it joins the answer's body or goes into a cookie is
 * the client's delivery, which the HTTP layer carries out.
 */
export interface IssuedTokens {
  response: Omit<TokenResponse, 'refresh_token'>
  /** The session's refresh token and when it lapses unless used first (ms since the epoch); none without a session. */
  refreshToken?: { token: string, expiresAt: number }
}

/**
 * One grant type: for a client already authenticated and allowed this grant,
 * the tokens it issues, or a BatonError that says why not.
 */
export type Grant = (client: ClientConfig, params: TokenParameters, context: RequestContext) => Promise<IssuedTokens>

/** What the grants work with. */
export interface GrantDeps {
  users: UserStore
  passwords: PasswordHasher
  sessions: SessionStore
  limits: RateLimiter
  accessTokens: AccessTokenIssuer
}

/** RFC 9449 §5: an access token bound to the request's DPoP key is of type DPoP; without a proof, Bearer. */
export function tokenType (context: Pick<RequestContext, 'dpopJkt'>): 'Bearer' | 'DPoP' {
  return context.dpopJkt === undefined ? 'Bearer' : 'DPoP'
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
export function sessionTokenResponse (accessTokens: AccessTokenIssuer, grant: GrantType, tokens: SessionTokens, client: ClientConfig, scope: string, context: RequestContext, newRefreshToken = true): IssuedTokens {
  const access = accessTokens.issue({ sub: tokens.uid, clientId: client.client_id, scope, sid: tokens.sid, username: tokens.username, jkt: context.dpopJkt })
  context.events.issued(grant, 'access_token')
  if (newRefreshToken) context.events.issued(grant, 'refresh_token')
  return {
    response: { access_token: access.token, token_type: tokenType(context), expires_in: access.expiresIn, scope },
    refreshToken: { token: tokens.refreshToken, expiresAt: tokens.expiresAt }
  }
}
