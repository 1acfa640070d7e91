import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { RateLimitedError } from './core/rate-limits.js'

/**
 * Security events a SIEM can alert on, each a log line with `event` set to
 * one of these names. They carry who and where, never a token, a password
 * or a secret.
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

// Events that mean an attack (or a leak) is under way are warnings; the rest is information.
const WARNINGS = new Set<AuditEvent>(['refresh.reuse_detected', 'refresh.grace_exhausted', 'login.locked', 'registration.limited', 'signing_key.revoked', 'user.locked'])

/** Logs one audit event for `request`, with its client IP and user agent. */
export function audit (request: FastifyRequest, event: AuditEvent, fields: AuditFields = {}): void {
  const userAgent = request.headers['user-agent']
  const line = {
    event,
    ...fields,
    ip: request.ip,
    // Bounded: the header is the client's to fill.
    user_agent: typeof userAgent === 'string' ? userAgent.slice(0, 256) : undefined
  }
  request.server.authMetrics?.event(request, event, fields)
  if (WARNINGS.has(event)) request.log.warn(line, event)
  else request.log.info(line, event)
}

/** Logs one audit event of an operator's command, which has no request: `operator` says who ran it. */
export function auditOperator (log: FastifyBaseLogger, event: AuditEvent, fields: AuditFields & { operator: string }): void {
  const line = { event, ...fields }
  if (WARNINGS.has(event)) log.warn(line, event)
  else log.info(line, event)
}

/**
 * Awaits a rate-limit admission; a refusal is audited as `event`, with the limit that refused as its
 * reason (and `known_client` when a known client's own budget is spent). Only the first refusal of a
 * limit's window is logged, so a flood of 429s is one warning per address (or account) and window;
 * the metrics count every refusal.
 */
export async function admitted<T> (request: FastifyRequest, event: 'login.locked' | 'registration.limited', admission: Promise<T>, fields: AuditFields = {}): Promise<T> {
  try {
    return await admission
  } catch (error) {
    if (error instanceof RateLimitedError) {
      const refusal = { ...fields, reason: error.limit, known_client: error.knownClient, retry_after_ms: error.retryAfterMs }
      if (error.firstRefusal) audit(request, event, refusal)
      else request.server.authMetrics?.event(request, event, refusal)
    }
    throw error
  }
}
