import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { counter, labelled } from '@baton/service-kit'
import type { AuditEvent, AuditFields } from './audit.js'

/** How a refresh grant ended, as counted by `baton_auth_refreshes_total{outcome}`. */
export type RefreshOutcome = 'rotated' | 'grace_retry' | 'reuse_detected' | 'grace_exhausted' | 'expired' | 'invalid_scope' | 'invalid'

/** Token types of `baton_auth_tokens_issued_total{token_type}`. */
export type IssuedTokenType = 'access_token' | 'refresh_token'

declare module 'fastify' {
  interface FastifyInstance {
    authMetrics: AuthMetrics
  }
}

/** The auth-service's business counters, on the app's own registry. */
export class AuthMetrics {
  readonly #tokensIssued
  readonly #refreshes
  readonly #graceRetries
  readonly #reuseDetected
  readonly #revocations
  readonly #logins
  readonly #rateLimited

  constructor (app: FastifyInstance) {
    this.#tokensIssued = labelled(counter(app, 'baton_auth_tokens_issued_total', 'Tokens issued, by grant and token type', ['grant', 'token_type']))
    this.#refreshes = labelled(counter(app, 'baton_auth_refreshes_total', 'Refresh grants that reached the session store, by outcome', ['outcome']))
    this.#graceRetries = counter(app, 'baton_auth_refresh_grace_retries_total', 'Retries of the just-rotated refresh token answered with the same successor')
    this.#reuseDetected = counter(app, 'baton_auth_refresh_reuse_detected_total', 'Spent refresh tokens presented again: each revoked its session')
    this.#revocations = labelled(counter(app, 'baton_auth_revocations_total', 'Sessions and access tokens revoked, by kind and reason', ['kind', 'reason']))
    this.#logins = labelled(counter(app, 'baton_auth_logins_total', 'Password-grant attempts, by outcome', ['outcome']))
    this.#rateLimited = labelled(counter(app, 'baton_auth_rate_limited_total', 'Requests refused by a rate limit, by action and limit', ['action', 'limit']))
  }

  /** One access token, and a refresh token when the grant has one. */
  issued (grant: string, tokenType: IssuedTokenType): void {
    this.#tokensIssued(grant, tokenType).inc()
  }

  refreshed (outcome: RefreshOutcome): void {
    this.#refreshes(outcome).inc()
  }

  /** Counts what an audit event records: the audit log and the metrics never disagree. */
  event (request: FastifyRequest, event: AuditEvent, fields: AuditFields): void {
    switch (event) {
      case 'login.succeeded': this.#logins('succeeded').inc(); break
      case 'login.failed': this.#logins(fields.reason ?? 'failed').inc(); break
      case 'login.locked': {
        const action = request.routeOptions.url === '/oauth/token' ? 'login' : 'password_change'
        if (action === 'login') this.#logins('rate_limited').inc()
        this.#rateLimited(action, fields.reason ?? 'unknown').inc()
        break
      }
      case 'registration.limited': this.#rateLimited('registration', fields.reason ?? 'unknown').inc(); break
      case 'refresh.grace_retry': this.#graceRetries.inc(); break
      case 'refresh.reuse_detected': this.#reuseDetected.inc(); break
      case 'session.revoked': this.#revocations('session', fields.reason ?? 'unknown').inc(); break
      case 'access_token.revoked': this.#revocations('access_token', 'revocation_endpoint').inc(); break
      default: break
    }
  }
}

/** Decorates `app.authMetrics`; needs service-kit's metrics plugin. */
export const authMetricsPlugin = fp(async function authMetrics (app: FastifyInstance) {
  app.decorate('authMetrics', new AuthMetrics(app))
}, { name: 'baton-auth-metrics', fastify: '5.x', dependencies: ['baton-metrics'] })
