import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { BatonError, type AccessTokenClaims } from '@baton/tokens'
import { adapterVerifier, authenticateRequest, requestOrigin, requestUrl, requiredScopeList, type AdapterOptions } from './adapter.js'
import { renderError } from './errors.js'
import type { RequestInfo, Verifier } from './verifier.js'

export type NodeVerifierOptions = AdapterOptions

/** Guards for plain `node:http` handlers. */
export interface NodeVerifier {
  /**
   * The claims of the request's access token; or, when it is refused (or
   * keys are unavailable), the RFC 6750 answer written to `res` and
   * undefined. Anything unexpected rejects.
   */
  authenticate: (req: IncomingMessage, res: ServerResponse) => Promise<AccessTokenClaims | undefined>
  /** Like `authenticate`, demanding every one of `scopes` too (403 insufficient_scope). */
  requireScope: (...scopes: string[]) => (req: IncomingMessage, res: ServerResponse) => Promise<AccessTokenClaims | undefined>
  verifier: Verifier
  /** Closes the verifier this guard made (not one it was given). */
  close: () => void
}

/** Writes an error as {@link renderError} renders it, as JSON. */
export function sendError (res: ServerResponse, error: unknown, realm = 'baton'): void {
  const { status, headers, body } = renderError(error, realm)
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * Protects plain `node:http` handlers with Baton access tokens.
 *
 * @example
 * const baton = nodeVerifier({ issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json' })
 * http.createServer(async (req, res) => {
 *   const claims = await baton.authenticate(req, res)
 *   if (claims === undefined) return // refused: the answer has been written
 *   res.end(JSON.stringify({ sub: claims.sub }))
 * })
 */
export function nodeVerifier (options: NodeVerifierOptions): NodeVerifier {
  const { verifier, owned, realm, publicBase, noteRefusal } = adapterVerifier(options)
  const describe = (req: IncomingMessage): RequestInfo => ({
    method: req.method ?? 'GET',
    // No proxy headers are read: behind a proxy, publicUrl says what clients call.
    url: () => requestUrl(publicBase ?? requestOrigin((req.socket as TLSSocket).encrypted === true ? 'https' : 'http', req.headers.host), req.url),
    dpop: req.headers.dpop
  })
  const guard = (scopes: readonly string[] | undefined) => async (req: IncomingMessage, res: ServerResponse): Promise<AccessTokenClaims | undefined> =>
    await new Promise((resolve, reject) => {
      authenticateRequest(verifier, undefined, req.headers.authorization, scopes, resolve, (error) => {
        noteRefusal(error)
        if (!(error instanceof BatonError)) {
          reject(error)
          return
        }
        sendError(res, error, realm)
        resolve(undefined)
      }, req, describe)
    })
  return {
    authenticate: guard(undefined),
    requireScope: (...scopes) => guard(requiredScopeList(scopes)),
    verifier,
    close: () => { if (owned) verifier.close() }
  }
}
