import { BatonError, quoteAuthParam, renderError as renderBatonError, type ErrorCode, type RenderedError } from '@baton/tokens'

/** What the client is told for each reason a token is refused; the reason is also the `reason` label of `baton_verify_failures_total`. */
export const REFUSALS = {
  missing: 'an access token is required',
  malformed: 'the access token is malformed',
  too_large: 'the access token is too large',
  algorithm: 'the access token algorithm is not accepted',
  header: 'the access token header carries a parameter Baton does not accept',
  encoding: 'the access token is not canonical base64url',
  duplicate: 'the access token names a member twice',
  typ: 'the access token type is not at+jwt',
  unknown_kid: 'the access token was signed with an unknown key',
  signature: 'the access token signature is invalid',
  claims: 'the access token claims are not valid',
  expired: 'the access token has expired',
  not_yet_valid: 'the access token is not valid yet',
  issued_in_future: 'the access token was issued in the future',
  rejected: 'the access token has been revoked',
  insufficient_scope: 'the access token lacks a required scope',
  invalid: 'the access token is not valid',
  dpop_bound: 'the access token is bound to a key: send it with the DPoP scheme and a DPoP proof',
  not_bound: 'the access token is not bound to a key: send it with the Bearer scheme',
  dpop_proof: 'the DPoP proof is not valid',
  dpop_key: 'the DPoP proof is signed with another key than the one the token is bound to',
  dpop_replay: 'the DPoP proof has been used before',
  dpop_nonce: 'the DPoP proof must carry the server\'s nonce'
} as const

/** Why a request or a token was refused. */
export type RefusalReason = keyof typeof REFUSALS

/**
 * A refusal, as RFC 6750 answers it: `statusCode` (also `status`), `error`
 * (`invalid_request`, `invalid_token`, `insufficient_scope`, or undefined for
 * a bare challenge when no token came), `message` (also `description`),
 * `scope` for insufficient_scope, and `reason` for logs and metrics.
 *
 * @example
 * try { await verifier.verify(token) } catch (error) {
 *   if (error instanceof VerifierError) console.log(error.status, error.error, error.reason)
 * }
 */
export class VerifierError extends BatonError {
  readonly reason: RefusalReason
  /** The scheme whose challenge answers it: the one the request used (`DPoP` for `Authorization: DPoP`), else `Bearer`. */
  readonly scheme: 'Bearer' | 'DPoP'
  /**
   * The proof algorithms a verifier that accepts DPoP names in its challenge
   * (RFC 9449 §7.1 `algs`); with a `Bearer` scheme, a `DPoP` challenge is
   * offered beside the Bearer one. Undefined: the verifier takes Bearer only.
   */
  readonly dpopAlgorithms: string | undefined

  constructor (code: ErrorCode, reason: RefusalReason, description: string = REFUSALS[reason], options: RefusalOptions = {}) {
    super(code, description, options)
    this.name = 'VerifierError'
    this.reason = reason
    this.scheme = options.scheme ?? 'Bearer'
    this.dpopAlgorithms = options.dpopAlgorithms
  }

  get status (): number { return this.statusCode }
  get description (): string { return this.message }
}

interface RefusalOptions {
  scope?: string
  cause?: unknown
  headers?: Record<string, string>
  scheme?: 'Bearer' | 'DPoP'
  dpopAlgorithms?: string
}

/** The same refusal, answered with these challenge settings. */
export function rechallenge (error: VerifierError, options: { scheme?: 'Bearer' | 'DPoP', dpopAlgorithms?: string, headers?: Record<string, string> }): VerifierError {
  return new VerifierError(error.code, error.reason, error.message, {
    ...(error.scope === undefined ? {} : { scope: error.scope }),
    ...(error.cause === undefined ? {} : { cause: error.cause }),
    headers: { ...error.headers, ...options.headers },
    scheme: options.scheme ?? error.scheme,
    dpopAlgorithms: options.dpopAlgorithms ?? error.dpopAlgorithms
  })
}

/**
 * How an error is answered: as `@baton/tokens`' renderError (RFC 6750), and
 * for a verifier that accepts DPoP, with RFC 9449's challenges: a refusal of
 * an `Authorization: DPoP` request gets `WWW-Authenticate: DPoP` with its
 * `error` and the accepted `algs`; a bound token sent as Bearer gets both a
 * Bearer and a DPoP challenge. A request without credentials keeps the bare
 * `Bearer realm=…` that RFC 6750 clients and Baton's contract expect; a DPoP
 * client learns the algorithms from the issuer's metadata
 * (`dpop_signing_alg_values_supported`) or from its first refusal.
 *
 * @example
 * const { status, headers, body } = renderError(error, 'my-api')
 * res.writeHead(status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body))
 */
export function renderError (error: unknown, realm = 'baton'): RenderedError {
  const rendered = renderBatonError(error, realm)
  if (!(error instanceof VerifierError) || error.dpopAlgorithms === undefined) return rendered
  const algs = `algs=${quoteAuthParam(error.dpopAlgorithms)}`
  if (error.scheme === 'DPoP') {
    const parts = [`DPoP realm=${quoteAuthParam(realm)}`]
    if (error.error !== undefined) parts.push(`error=${quoteAuthParam(error.error)}`, `error_description=${quoteAuthParam(error.message)}`)
    if (error.scope !== undefined) parts.push(`scope=${quoteAuthParam(error.scope)}`)
    parts.push(algs)
    rendered.headers['www-authenticate'] = parts.join(', ')
  } else if (error.reason === 'dpop_bound') {
    rendered.headers['www-authenticate'] = `${rendered.headers['www-authenticate']!}, DPoP realm=${quoteAuthParam(realm)}, ${algs}`
  }
  return rendered
}

/** A bad token: 401 invalid_token. */
export function refuseToken (reason: RefusalReason, description?: string, cause?: unknown): VerifierError {
  return new VerifierError('BATON_INVALID_TOKEN', reason, description, cause === undefined ? {} : { cause })
}
