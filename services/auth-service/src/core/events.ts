import type { GrantType } from './clients/clients.js'

/**
 * Security events a SIEM can alert on, each an audit log line with `event`
 * set to one of these names. They carry who and where, never a token, a
 * password or a secret.
 */
export type AuditEvent =
  | 'user.registered'
  | 'registration.limited'
  | 'login.succeeded'
  | 'login.failed'
  | 'login.locked'
  | 'refresh.grace_retry'
  | 'refresh.reuse_detected'
  | 'refresh.grace_exhausted'
  // A DPoP proof the token endpoint refused; a replayed one (a copy of a proof already used) on its own.
  | 'dpop.proof_refused'
  | 'dpop.proof_replayed'
  | 'session.revoked'
  | 'access_token.revoked'
  | 'password.changed'
  | 'password.change_failed'
  // Operator commands (baton-admin): `operator` names who ran them, instead of an ip and user agent.
  | 'signing_key.rotated'
  | 'signing_key.revoked'
  | 'user.locked'
  | 'user.unlocked'

export interface AuditFields {
  /** User id. */
  user?: string
  sid?: string
  client_id?: string
  /** Why: the failed check, the limit that refused, who ended a session ... */
  reason?: string
  [field: string]: string | number | boolean | undefined
}

/** Which limit refused an attempt: the `reason` of a `login.locked` or `registration.limited` event. */
export type LimitName = 'ip_attempts' | 'ip_failures' | 'account_failures' | 'ip_registrations'

/** What a rate-limited attempt was trying to do. */
export type LimitedAction = 'login' | 'password_change' | 'registration'

export type IssuedTokenType = 'access_token' | 'refresh_token'

/** How a refresh grant that reached the session store ended. */
export type RefreshOutcome = 'rotated' | 'grace_retry' | 'reuse_detected' | 'grace_exhausted' | 'expired' | 'invalid_scope' | 'invalid'

/**
 * What the domain tells about a request it serves. Whoever serves the
 * request decides where it goes (the audit log, the metrics); the domain
 * only says what happened.
 */
export interface Events {
  /** A security event: one audit line. */
  audit: (event: AuditEvent, fields?: AuditFields) => void
  /** A rate limit refused an attempt at `action`: every refusal, audited or not. */
  rateLimited: (action: LimitedAction, limit: LimitName) => void
  /** A token a grant handed out. */
  issued: (grant: GrantType, tokenType: IssuedTokenType) => void
  refreshed: (outcome: RefreshOutcome) => void
}
