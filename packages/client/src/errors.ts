/**
 * Why a call failed: an OAuth error code the auth-service answered
 * (`invalid_grant`, `invalid_client`, `slow_down`, `invalid_request`, …) or
 * one of the client's own:
 *
 * - `not_signed_in`: there is no session to act for; log in first
 * - `network_error`: the auth-service could not be reached, or its answer was lost
 * - `http_error`: an answer with an unexpected status and no OAuth error
 * - `invalid_response`: an answer the client cannot read
 * - `origin_not_allowed`: `fetch` was asked to send the access token to an origin not in `apiOrigins`
 * - `invalid_options`: `createClient` was given options that do not fit together
 * - `dpop_key_unavailable`: the DPoP key store failed (IndexedDB blocked, say); nothing was sent
 */
export type ClientErrorCode =
  | 'not_signed_in'
  | 'network_error'
  | 'http_error'
  | 'invalid_response'
  | 'origin_not_allowed'
  | 'invalid_options'
  | 'dpop_key_unavailable'
  | (string & {})

/**
 * What every method of the client rejects with.
 *
 * @example
 * try { await client.login('ada', password) } catch (error) {
 *   if (error instanceof BatonClientError && error.code === 'invalid_grant') showWrongPassword()
 *   if (error instanceof BatonClientError && error.code === 'slow_down') retryIn(error.retryAfter)
 * }
 */
export class BatonClientError extends Error {
  readonly code: ClientErrorCode
  /** The HTTP status of the answer, when there was one. */
  readonly status: number | undefined
  /** Seconds to wait before trying again (`Retry-After`), when the auth-service said so. */
  readonly retryAfter: number | undefined

  constructor (code: ClientErrorCode, message: string, options: { status?: number, retryAfter?: number, cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BatonClientError'
    this.code = code
    this.status = options.status
    this.retryAfter = options.retryAfter
  }
}

/** Whether `error` says nothing about the session: trying again later may work. */
export function isTransient (error: unknown): boolean {
  return error instanceof BatonClientError && (error.code === 'network_error' || (error.status !== undefined && error.status >= 500))
}
