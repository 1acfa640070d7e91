import { BatonError, type ErrorCode } from '@baton/tokens'

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
  invalid: 'the access token is not valid'
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

  constructor (code: ErrorCode, reason: RefusalReason, description: string = REFUSALS[reason], options: { scope?: string, cause?: unknown } = {}) {
    super(code, description, options)
    this.name = 'VerifierError'
    this.reason = reason
  }

  get status (): number { return this.statusCode }
  get description (): string { return this.message }
}

/** A bad token: 401 invalid_token. */
export function refuseToken (reason: RefusalReason, description?: string, cause?: unknown): VerifierError {
  return new VerifierError('BATON_INVALID_TOKEN', reason, description, cause === undefined ? {} : { cause })
}
