import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { AccessTokenClaims } from '@baton/tokens'
import { adapterVerifier, authenticateRequest, requestOrigin, requestUrl, requiredScopeList, type AdapterOptions } from './adapter.js'
import { renderError, VerifierError } from './errors.js'
import type { RequestInfo, Verifier } from './verifier.js'

export type FastifyVerifierOptions = AdapterOptions

/** A callback hook for `onRequest` or `preHandler`: a token seen before costs no promise. */
export type AuthHook = (this: unknown, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

declare module 'fastify' {
  interface FastifyInstance {
    /** Hook (onRequest or preHandler) that admits only a valid Baton access token and sets `request.auth`. */
    authenticate: AuthHook
    /** Hook that demands every one of `scopes` (403 insufficient_scope), authenticating first if no earlier hook did. */
    requireScope: (...scopes: string[]) => AuthHook
    /** Verifies a token that came some other way than the Authorization header, with every check `authenticate` makes. */
    verifyAccessToken: (token: string) => Promise<AccessTokenClaims>
    /** The verifier behind the hooks. */
    batonVerifier: Verifier
  }
  interface FastifyRequest {
    /** Claims of the verified access token; set by `authenticate`, null before it ran. */
    auth: AccessTokenClaims
  }
}

/**
 * Protects Fastify routes with Baton access tokens. Adds the hooks
 * `app.authenticate` and `app.requireScope(...scopes)` and sets
 * `request.auth`. With `dpop`, DPoP-bound tokens are taken with their proofs
 * (RFC 9449; see `publicUrl`). A refused request is answered here, as RFC 6750 says (a
 * bare `WWW-Authenticate: Bearer realm=…` 401 when no token came, 400
 * invalid_request, 401 invalid_token, 403 insufficient_scope), whatever error
 * handler the app has; a key-set outage (503) and anything unexpected go to
 * the app's error handler. `onRefused` is told of each refusal, e.g. to count
 * it by `reason`.
 *
 * @example
 * await app.register(verifierPlugin, { issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json' })
 * app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))
 * app.get('/reports', { onRequest: app.requireScope('reports:read') }, async () => ({ reports: [] }))
 */
export const verifierPlugin = fp(async function batonVerifier (app: FastifyInstance, opts: FastifyVerifierOptions) {
  const { verifier, owned, realm, publicBase, noteRefusal } = adapterVerifier(opts, { log: app.log })

  function refuse (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, error: unknown): void {
    noteRefusal(error)
    if (!(error instanceof VerifierError)) {
      done(error as Error)
      return
    }
    request.log.info({ code: error.code, statusCode: error.statusCode }, error.message)
    const { status, headers, body } = renderError(error, realm)
    reply.code(status).headers(headers).send(body)
  }

  const describe = (request: FastifyRequest): RequestInfo => ({
    method: request.method,
    // protocol and host follow trustProxy; originalUrl is the path as the client sent it, before any rewriteUrl.
    url: () => requestUrl(publicBase ?? requestOrigin(request.protocol, request.host), request.originalUrl),
    dpop: request.headers.dpop
  })

  function hook (scopes: readonly string[] | undefined): AuthHook {
    return function authenticate (request, reply, done) {
      authenticateRequest(verifier, request.auth, request.headers.authorization, scopes,
        (claims) => { request.auth = claims; done() },
        (error) => { refuse(request, reply, done, error) },
        request, describe)
    }
  }

  app.decorateRequest('auth', null as unknown as AccessTokenClaims)
  app.decorate('batonVerifier', verifier)
  app.decorate('authenticate', hook(undefined))
  app.decorate('verifyAccessToken', verifier.verify)
  app.decorate('requireScope', (...scopes: string[]) => hook(requiredScopeList(scopes)))
  if (owned) {
    // Not awaited: the app may start before the issuer does; the first request waits for the keys instead.
    app.addHook('onReady', async function loadKeys () {
      verifier.refreshKeys().catch((error: unknown) => { app.log.warn({ err: { message: (error as Error).message } }, 'verification keys could not be loaded yet') })
    })
    app.addHook('onClose', async () => { verifier.close() })
  }
}, { name: 'baton-verifier', fastify: '5.x' })
