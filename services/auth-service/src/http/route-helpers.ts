import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { BatonError, isBatonError, type AccessTokenClaims } from '@baton/tokens'
import type { Events } from '../core/events.js'
import type { RequestContext } from '../core/request-context.js'
import { requestEvents } from '../observability/events.js'

/**
 * An `onSend` hook for routes whose answers carry tokens or session data:
 * no cache may keep them (RFC 6749 §5.1; `Pragma` for HTTP/1.0 caches).
 */
export async function noStore (_request: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
}

/** How the routes that act for a user are called (OpenAPI): a Bearer token, or a DPoP-bound one with its proof. */
export const ACCESS_TOKEN_SECURITY = [{ bearerAuth: [] }, { dpopAuth: [] }]

/** A `preHandler` for routes that act for a user: a client_credentials token has no session to speak for. */
export async function requireUserSession (request: FastifyRequest): Promise<void> {
  if (request.auth.sid === undefined) throw new BatonError('BATON_INVALID_TOKEN', 'a user\'s access token is required')
}

/** The body of RFC 7009 revocation and RFC 7662 introspection requests. */
export const TokenParameterSchema = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 8192 }),
  // RFC 7009 §2.1: only a hint; an unknown hint just widens the search.
  token_type_hint: Type.Optional(Type.String({ maxLength: 64 })),
  client_id: Type.Optional(Type.String({ maxLength: 128 })),
  client_secret: Type.Optional(Type.String({ maxLength: 512 }))
})

/** The request headers a cookie-mode client's requests need (documented; checked by the route, which knows the client). */
export const CookieRequestHeadersSchema = Type.Object({
  origin: Type.Optional(Type.String({ description: 'Cookie-mode clients: the page\'s origin, one the client allows (`CORS_ORIGINS` or its `allowed_origins`); browsers set it' })),
  'x-baton-client': Type.Optional(Type.String({ maxLength: 64, description: 'Cookie-mode clients: required, any value (`1`); a cross-site form cannot send it, so with the `Origin` check it defends the cookie against CSRF' }))
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

/** Where the domain tells what a request did: the request's audit lines and the metrics. */
export function eventsOf (request: FastifyRequest): Events {
  const userAgent = request.headers['user-agent']
  return requestEvents(request.server.auth.metrics, request.log, { ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent : undefined })
}

/** The request as the domain sees it, for client `clientId`. */
export function requestContext (request: FastifyRequest, clientId: string): RequestContext {
  const userAgent = request.headers['user-agent']
  return { clientId, userAgent: typeof userAgent === 'string' ? userAgent : '', ip: request.ip, events: eventsOf(request) }
}
