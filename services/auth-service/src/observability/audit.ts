import type { AuditEvent, AuditFields } from '../core/events.js'
import type { Logger } from '../core/logger.js'

// Events that mean an attack (or a leak) is under way are warnings; the rest is information.
const WARNINGS = new Set<AuditEvent>(['refresh.reuse_detected', 'refresh.grace_exhausted', 'dpop.proof_replayed', 'login.locked', 'registration.limited', 'signing_key.revoked', 'user.locked'])

function write (log: Logger, event: AuditEvent, line: Record<string, unknown>): void {
  if (WARNINGS.has(event)) log.warn(line, event)
  else log.info(line, event)
}

/** Where a request came from, as its audit lines say. */
export interface AuditOrigin {
  ip: string
  /** The raw `User-Agent` header, if any. */
  userAgent: string | undefined
}

/** Logs one audit event of a request, with its client IP and user agent. */
export function auditRequest (log: Logger, event: AuditEvent, fields: AuditFields, origin: AuditOrigin): void {
  write(log, event, {
    event,
    ...fields,
    ip: origin.ip,
    // Bounded: the header is the client's to fill.
    user_agent: origin.userAgent?.slice(0, 256)
  })
}

/** Logs one audit event of an operator's command, which has no request: `operator` says who ran it. */
export function auditOperator (log: Logger, event: AuditEvent, fields: AuditFields & { operator: string }): void {
  write(log, event, { event, ...fields })
}
