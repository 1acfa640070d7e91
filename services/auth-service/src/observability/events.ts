import type { Events } from '../core/events.js'
import type { Logger } from '../core/logger.js'
import { auditRequest, type AuditOrigin } from './audit.js'
import type { AuthMetrics } from './metrics.js'

/** Where a request's events go: its audit lines to the request's log, and every event to the metrics. */
export function requestEvents (metrics: AuthMetrics, log: Logger, origin: AuditOrigin): Events {
  return {
    audit: (event, fields = {}) => {
      metrics.audited(event, fields)
      auditRequest(log, event, fields, origin)
    },
    rateLimited: (action, limit) => { metrics.rateLimited(action, limit) },
    issued: (grant, tokenType) => { metrics.issued(grant, tokenType) },
    refreshed: (outcome) => { metrics.refreshed(outcome) }
  }
}
