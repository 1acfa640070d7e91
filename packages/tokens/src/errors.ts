/**
 * Every failure Baton reports is one of these codes. Each code fixes the HTTP
 * status and the RFC 6749 / RFC 6750 `error` value that reach the client, so
 * handlers throw a code and never build error bodies themselves.
 */
export const ERRORS = {
  BATON_INVALID_REQUEST: { status: 400, error: 'invalid_request' },
  BATON_INVALID_GRANT: { status: 400, error: 'invalid_grant' },
  BATON_INVALID_SCOPE: { status: 400, error: 'invalid_scope' },
  BATON_UNSUPPORTED_GRANT_TYPE: { status: 400, error: 'unsupported_grant_type' },
  BATON_UNAUTHORIZED_CLIENT: { status: 400, error: 'unauthorized_client' },
  BATON_INVALID_CLIENT: { status: 401, error: 'invalid_client' },
  // An authenticated client asking for what its registration does not allow it (introspection).
  BATON_CLIENT_NOT_ALLOWED: { status: 403, error: 'unauthorized_client' },
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
  BATON_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
  BATON_INTERNAL: { status: 500, error: 'server_error' }
} as const satisfies Record<string, { status: number, error: string | undefined }>

export type ErrorCode = keyof typeof ERRORS

/** Where an error was raised decides how it is challenged on the wire. */
export type ErrorScheme = 'oauth' | 'bearer'

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
