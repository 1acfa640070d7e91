/**
 * Every failure Baton reports is one of these codes. Each code fixes the HTTP
 * status and the RFC 6749 / RFC 6750 `error` value that reach the client, so
 * handlers throw a code and never build error bodies themselves.
 */
export const ERRORS = {
  BATON_INVALID_REQUEST: { status: 400, error: 'invalid_request' },
  BATON_INVALID_GRANT: { status: 400, error: 'invalid_grant' },
  // A spent refresh token retried beyond the grace retries while its session lives: the successor an earlier answer carried still works.
  BATON_GRACE_RETRIES_SPENT: { status: 400, error: 'invalid_grant' },
  BATON_INVALID_SCOPE: { status: 400, error: 'invalid_scope' },
  BATON_UNSUPPORTED_GRANT_TYPE: { status: 400, error: 'unsupported_grant_type' },
  BATON_UNAUTHORIZED_CLIENT: { status: 400, error: 'unauthorized_client' },
  // RFC 9449 §5 and §8 at the token endpoint: a DPoP proof that is missing where required, or refused; a proof without the server's nonce.
  BATON_INVALID_DPOP_PROOF: { status: 400, error: 'invalid_dpop_proof' },
  BATON_USE_DPOP_NONCE: { status: 400, error: 'use_dpop_nonce' },
  BATON_INVALID_CLIENT: { status: 401, error: 'invalid_client' },
  // An authenticated client asking for what its registration does not allow it (introspection).
  BATON_CLIENT_NOT_ALLOWED: { status: 403, error: 'unauthorized_client' },
  // A cookie-mode client's request without the proof that a page of an allowed origin sent it (CSRF).
  BATON_CROSS_SITE_REFUSED: { status: 403, error: 'invalid_request' },
  BATON_WEAK_PASSWORD: { status: 400, error: 'invalid_request' },
  BATON_USERNAME_TAKEN: { status: 409, error: 'username_taken' },
  BATON_NOT_FOUND: { status: 404, error: 'not_found' },
  BATON_METHOD_NOT_ALLOWED: { status: 405, error: 'method_not_allowed' },
  BATON_PAYLOAD_TOO_LARGE: { status: 413, error: 'invalid_request' },
  BATON_UNSUPPORTED_MEDIA_TYPE: { status: 415, error: 'invalid_request' },
  BATON_HEADERS_TOO_LARGE: { status: 431, error: 'invalid_request' },
  BATON_RATE_LIMITED: { status: 429, error: 'slow_down' },
  // RFC 6750 §3: no credentials at all gets a bare challenge without `error`.
  BATON_TOKEN_MISSING: { status: 401, error: undefined },
  BATON_TOKEN_MALFORMED: { status: 400, error: 'invalid_request' },
  BATON_INVALID_TOKEN: { status: 401, error: 'invalid_token' },
  BATON_INSUFFICIENT_SCOPE: { status: 403, error: 'insufficient_scope' },
  // RFC 9449 §7.1 at a protected resource: a DPoP-bound token's proof is missing or invalid, or lacks the server's nonce.
  BATON_DPOP_PROOF_REFUSED: { status: 401, error: 'invalid_dpop_proof' },
  BATON_DPOP_NONCE_REQUIRED: { status: 401, error: 'use_dpop_nonce' },
  BATON_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
  BATON_INTERNAL: { status: 500, error: 'server_error' }
} as const satisfies Record<string, { status: number, error: string | undefined }>

export type ErrorCode = keyof typeof ERRORS

/**
 * A coded error that carries its HTTP status.
 *
 * @example throw new BatonError('BATON_INVALID_GRANT', 'refresh token is not valid')
 */
export class BatonError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly error: string | undefined
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers: Readonly<Record<string, string>>
  /** Scope a Bearer challenge should name (`insufficient_scope`). */
  readonly scope: string | undefined

  constructor (code: ErrorCode, description: string, options: { headers?: Record<string, string>, scope?: string, cause?: unknown } = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BatonError'
    this.code = code
    this.statusCode = ERRORS[code].status
    this.error = ERRORS[code].error
    this.headers = options.headers ?? {}
    this.scope = options.scope
  }
}

export function isBatonError (value: unknown): value is BatonError {
  return value instanceof BatonError
}

/** The codes RFC 6750 answers with a `WWW-Authenticate: Bearer` challenge. */
const BEARER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'BATON_TOKEN_MISSING', 'BATON_TOKEN_MALFORMED', 'BATON_INVALID_TOKEN', 'BATON_INSUFFICIENT_SCOPE'
])

/** Whether an error is one of RFC 6750's answers to a request for a protected resource. */
export function isBearerError (value: unknown): value is BatonError {
  return value instanceof BatonError && BEARER_CODES.has(value.code)
}

/**
 * An auth-param value as a quoted string. RFC 6750 §3 allows only
 * %x20-21 / %x23-5B / %x5D-7E: anything else would break the quoting, or
 * make Node refuse the header so that the challenge is lost.
 *
 * @example quoteAuthParam('say "hi"') // '"say hi"'
 */
export function quoteAuthParam (value: string): string {
  return `"${value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')}"`
}

/**
 * The RFC 6750 §3 challenge for a Bearer failure: a bare `Bearer realm=…`
 * when no credentials came, else with `error`, `error_description` and, for
 * insufficient_scope, `scope`.
 *
 * @example bearerChallenge(new BatonError('BATON_TOKEN_MISSING', 'an access token is required'), 'baton') // 'Bearer realm="baton"'
 */
export function bearerChallenge (error: BatonError, realm: string): string {
  const parts = [`Bearer realm=${quoteAuthParam(realm)}`]
  if (error.error !== undefined) {
    parts.push(`error=${quoteAuthParam(error.error)}`, `error_description=${quoteAuthParam(error.message)}`)
  }
  if (error.scope !== undefined) parts.push(`scope=${quoteAuthParam(error.scope)}`)
  return parts.join(', ')
}

/** An error as it goes on the wire: status, headers and a JSON body. */
export interface RenderedError {
  status: number
  headers: Record<string, string>
  /** RFC 6750 §3 / RFC 6749 §5.2; no `error` for a bare challenge (no token was sent). */
  body: { error?: string, error_description: string }
}

/**
 * How an error is answered: a Bearer failure as RFC 6750 says (401 with a
 * bare `WWW-Authenticate: Bearer realm=…` when no token came, 400
 * invalid_request, 401 invalid_token, 403 insufficient_scope, each with its
 * challenge), `invalid_client` with a Basic challenge (RFC 6749 §5.2), any
 * other BatonError with its status and headers, and anything else as a 500
 * that says nothing about its cause.
 *
 * @example
 * const { status, headers, body } = renderError(error, 'my-api')
 * res.writeHead(status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body))
 */
export function renderError (error: unknown, realm = 'baton'): RenderedError {
  if (!(error instanceof BatonError)) {
    return { status: 500, headers: {}, body: { error: 'server_error', error_description: 'internal error' } }
  }
  const headers: Record<string, string> = { ...error.headers }
  if (BEARER_CODES.has(error.code)) headers['www-authenticate'] = bearerChallenge(error, realm)
  else if (error.code === 'BATON_INVALID_CLIENT') headers['www-authenticate'] = `Basic realm=${quoteAuthParam(realm)}`
  // A refusal (or an outage) is about this request only: no cache may keep it.
  if (error.statusCode === 400 || error.statusCode === 401 || error.statusCode === 503) headers['cache-control'] = 'no-store'
  return {
    status: error.statusCode,
    headers,
    body: error.error === undefined ? { error_description: error.message } : { error: error.error, error_description: error.message }
  }
}
