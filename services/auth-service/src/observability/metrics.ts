import type { FastifyInstance } from 'fastify'
import { counter, gauge, histogram, labelled } from '@baton/service-kit'
import type { GrantType } from '../core/clients/clients.js'
import type { AuditEvent, AuditFields, IssuedTokenType, LimitName, LimitedAction, RefreshOutcome } from '../core/events.js'
import type { AppendOutcome } from '../core/revocation-publisher.js'

const KEY_STATES = ['pending', 'active', 'retiring', 'retired']

/**
 * Every metric of the auth-service's own, on the app's registry. Each is
 * made here, the one way (service-kit's factories, with `labelled` children
 * for labelled ones), and moves only when a caller says what happened.
 */
export class AuthMetrics {
  readonly #tokensIssued
  readonly #refreshes
  readonly #graceRetries
  readonly #reuseDetected
  readonly #revocations
  readonly #logins
  readonly #rateLimited
  readonly #feedEvents
  readonly #redisCommands
  readonly #app: FastifyInstance

  constructor (app: FastifyInstance) {
    this.#app = app
    this.#tokensIssued = labelled(counter(app, 'baton_auth_tokens_issued_total', 'Tokens issued, by grant and token type', ['grant', 'token_type']))
    this.#refreshes = labelled(counter(app, 'baton_auth_refreshes_total', 'Refresh grants that reached the session store, by outcome', ['outcome']))
    this.#graceRetries = counter(app, 'baton_auth_refresh_grace_retries_total', 'Retries of the just-rotated refresh token answered with the same successor')
    this.#reuseDetected = counter(app, 'baton_auth_refresh_reuse_detected_total', 'Spent refresh tokens presented again: each revoked its session')
    this.#revocations = labelled(counter(app, 'baton_auth_revocations_total', 'Sessions and access tokens revoked, by kind and reason', ['kind', 'reason']))
    this.#logins = labelled(counter(app, 'baton_auth_logins_total', 'Password-grant attempts, by outcome', ['outcome']))
    this.#rateLimited = labelled(counter(app, 'baton_auth_rate_limited_total', 'Requests refused by a rate limit, by action and limit', ['action', 'limit']))
    this.#feedEvents = labelled(counter(app, 'baton_auth_revocation_feed_events_total', 'Revocation feed appends: published, failed (given up after retries) and retried attempts', ['outcome']))
    this.#redisCommands = labelled(histogram(app, 'baton_auth_redis_command_duration_seconds', 'Redis round trips as the service sees them, by command or script, failures and timeouts included',
      ['command'], [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]))
  }

  /** One access token, and a refresh token when the grant has one. */
  issued (grant: GrantType, tokenType: IssuedTokenType): void {
    this.#tokensIssued(grant, tokenType).inc()
  }

  refreshed (outcome: RefreshOutcome): void {
    this.#refreshes(outcome).inc()
  }

  /** Every refusal by a rate limit; a refused login is a login attempt too. */
  rateLimited (action: LimitedAction, limit: LimitName): void {
    if (action === 'login') this.#logins('rate_limited').inc()
    this.#rateLimited(action, limit).inc()
  }

  /** Counts what an audit event records: the audit log and the metrics never disagree. */
  audited (event: AuditEvent, fields: AuditFields): void {
    switch (event) {
      case 'login.succeeded': this.#logins('succeeded').inc(); break
      case 'login.failed': this.#logins(fields.reason ?? 'failed').inc(); break
      case 'refresh.grace_retry': this.#graceRetries.inc(); break
      case 'refresh.reuse_detected': this.#reuseDetected.inc(); break
      case 'session.revoked': this.#revocations('session', fields.reason ?? 'unknown').inc(); break
      case 'access_token.revoked': this.#revocations('access_token', 'revocation_endpoint').inc(); break
      default: break
    }
  }

  revocationFeed (outcome: AppendOutcome): void {
    this.#feedEvents(outcome).inc()
  }

  /** One Redis round trip, labelled by command or script name. */
  redisCommand (label: string, seconds: number): void {
    this.#redisCommands(label).observe(seconds)
  }

  /** `baton_auth_signing_keys{state}`, counted at every scrape so that it follows the clock rather than the last reload. */
  signingKeys (states: () => Iterable<{ state: string }>): void {
    gauge(this.#app, 'baton_auth_signing_keys', 'Signing keys held, by state (operator-supplied keys after the first: published)', ['state'], () => {
      const counts = new Map<string, number>(KEY_STATES.map((state) => [state, 0]))
      for (const key of states()) counts.set(key.state, (counts.get(key.state) ?? 0) + 1)
      return [...counts].map(([state, value]) => [{ state }, value] as const)
    })
  }
}
