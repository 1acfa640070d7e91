import type { FastifyReply, FastifyRequest } from 'fastify'
import { BatonError, isBatonError, type TokenResponse } from '@baton/tokens'
import type { ClientConfig } from '../core/clients/clients.js'
import type { IssuedTokens, TokenParameters } from '../core/grants/grant.js'

/**
 * Cookie mode: a browser client's refresh token lives in an HttpOnly cookie
 * that no script can read, one per client so that two apps of one site do
 * not sign each other out. `__Host-` makes the browser refuse the cookie
 * unless it is Secure, has no Domain and has Path=/: no sibling subdomain
 * can plant or shadow it (a `__Secure-` cookie on a narrower path could be
 * shadowed by one a sibling sets with Domain and a longer path).
 */
export const REFRESH_COOKIE_PREFIX = '__Host-baton-refresh-'

/** The header a cross-site form cannot send: with the Origin check, cookie mode's CSRF defence. */
export const CLIENT_HEADER = 'x-baton-client'

export function refreshCookieName (client: ClientConfig): string {
  return `${REFRESH_COOKIE_PREFIX}${client.client_id}`
}

const COOKIE_ATTRIBUTES = { httpOnly: true, secure: true, sameSite: 'strict', path: '/' } as const

/**
 * Refuses (403) a cookie-mode client's request that a page of one of its
 * origins did not send with the custom header: before anything else
 * happens, so a forged request changes nothing.
 */
export function checkCookieRequest (request: FastifyRequest, client: ClientConfig): void {
  const refusal = request.server.auth.origins.cookieRequestRefusal(client, {
    origin: request.headers.origin,
    clientHeader: request.headers[CLIENT_HEADER] !== undefined
  })
  if (refusal !== undefined) throw new BatonError('BATON_CROSS_SITE_REFUSED', refusal)
}

/** The refresh token the browser sent in the client's cookie, if any. */
export function refreshTokenFromCookie (request: FastifyRequest, client: ClientConfig): string | undefined {
  const header = request.headers.cookie
  if (header === undefined) return undefined
  const token = request.server.parseCookie(header)[refreshCookieName(client)]
  return token === undefined || token === '' ? undefined : token
}

/** Tells the browser to forget the client's refresh token. */
export function clearRefreshCookie (reply: FastifyReply, client: ClientConfig): void {
  reply.clearCookie(refreshCookieName(client), COOKIE_ATTRIBUTES)
}

/**
 * The token endpoint's answer for `client`: the refresh token in the body,
 * or for a cookie-mode client only in its cookie, which lives exactly as
 * long as the session can (its idle or absolute end, whichever is sooner).
 */
export function deliverTokens (reply: FastifyReply, client: ClientConfig, issued: IssuedTokens): TokenResponse {
  const { response, refreshToken } = issued
  if (refreshToken === undefined) return response
  if (client.refreshTokenDelivery === 'body') return { ...response, refresh_token: refreshToken.token }
  const maxAge = Math.max(0, Math.floor((refreshToken.expiresAt - reply.server.auth.clock()) / 1000))
  reply.setCookie(refreshCookieName(client), refreshToken.token, { ...COOKIE_ATTRIBUTES, maxAge })
  return response
}

/**
 * A cookie-mode client's token request: refused unless a page of its origins
 * sent it; a refresh takes the refresh token from the cookie (never from
 * the body) and, when the session turns out to be over, clears the cookie.
 */
export async function cookieTokenRequest (request: FastifyRequest, reply: FastifyReply, client: ClientConfig, body: TokenParameters & { grant_type: string }, issue: (params: TokenParameters) => Promise<IssuedTokens>): Promise<TokenResponse> {
  checkCookieRequest(request, client)
  if (body.grant_type !== 'refresh_token') return deliverTokens(reply, client, await issue(body))
  if (body.refresh_token !== undefined) throw new BatonError('BATON_INVALID_REQUEST', 'this client\'s refresh token travels in its cookie, never in the body')
  const refreshToken = refreshTokenFromCookie(request, client)
  // What the client reads as "no session": the cookie is beyond its reach, so it cannot tell otherwise.
  if (refreshToken === undefined) throw new BatonError('BATON_INVALID_GRANT', 'no refresh token cookie: sign in')
  try {
    return deliverTokens(reply, client, await issue({ ...body, refresh_token: refreshToken }))
  } catch (error) {
    // A spent, revoked or expired session: the cookie can never work again. Not so
    // for BATON_GRACE_RETRIES_SPENT: the session lives, and the cookie may already
    // hold the successor that a parallel answer set.
    if (isBatonError(error) && error.code === 'BATON_INVALID_GRANT') clearRefreshCookie(reply, client)
    throw error
  }
}
