import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { AccessTokenClaims } from '@baton/tokens'
import { adapterVerifier, authenticateRequest, requestOrigin, requestUrl, requiredScopeList, type AdapterOptions } from './adapter.js'
import { VerifierError } from './errors.js'
import { sendError } from './node.js'
import type { RequestInfo, Verifier } from './verifier.js'

declare global {
  // Express's own way for middleware to add to its Request type.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Claims of the verified access token, set by `@baton/verifier/express`. */
      auth?: AccessTokenClaims
    }
  }
}

export type ExpressVerifierOptions = AdapterOptions

/** Express 4 and 5 middleware; typed on node:http's request and response, which Express's extend. */
type ExpressRequest = IncomingMessage & { auth?: AccessTokenClaims, protocol?: string, originalUrl?: string }
export type ExpressMiddleware = (req: ExpressRequest, res: ServerResponse, next: (error?: unknown) => void) => void

export interface ExpressVerifier {
  /** Admits only a valid Baton access token and sets `req.auth`. */
  authenticate: ExpressMiddleware
  /** Demands every one of `scopes` (403 insufficient_scope), authenticating first if no earlier middleware did. */
  requireScope: (...scopes: string[]) => ExpressMiddleware
  verifier: Verifier
  /** Closes the verifier this made (not one it was given). */
  close: () => void
}

/**
 * Protects Express routes with Baton access tokens. A refused request is
 * answered here, as RFC 6750 says; a key-set outage (503) and anything
 * unexpected go to `next(error)`, to the app's error handler.
 *
 * @example
 * const baton = expressVerifier({ issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json' })
 * app.get('/me', baton.authenticate, (req, res) => { res.json({ sub: req.auth?.sub }) })
 * app.get('/reports', baton.requireScope('reports:read'), (req, res) => { res.json({ reports: [] }) })
 */
export function expressVerifier (options: ExpressVerifierOptions): ExpressVerifier {
  const { verifier, owned, realm, publicBase, noteRefusal } = adapterVerifier(options)
  const describe = (req: ExpressRequest): RequestInfo => ({
    method: req.method ?? 'GET',
    url: () => {
      // req.protocol follows Express's `trust proxy`; originalUrl keeps the path a router mounted below strips from req.url.
      const scheme = req.protocol ?? ((req.socket as TLSSocket).encrypted === true ? 'https' : 'http')
      return requestUrl(publicBase ?? requestOrigin(scheme, req.headers.host), req.originalUrl ?? req.url)
    },
    dpop: req.headers.dpop
  })
  const middleware = (scopes: readonly string[] | undefined): ExpressMiddleware => function batonAuthenticate (req, res, next) {
    authenticateRequest(verifier, req.auth, req.headers.authorization, scopes,
      (claims) => { req.auth = claims; next() },
      (error) => {
        noteRefusal(error)
        if (error instanceof VerifierError) sendError(res, error, realm)
        else next(error)
      },
      req, describe)
  }
  return {
    authenticate: middleware(undefined),
    requireScope: (...scopes) => middleware(requiredScopeList(scopes)),
    verifier,
    close: () => { if (owned) verifier.close() }
  }
}
