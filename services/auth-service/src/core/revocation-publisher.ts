import { encodeRevocationEvent, type RevocationEvent } from '@baton/tokens'
import type { RedisClient } from '../redis/client.js'
import { withinRedisBudget, withoutRedisBudget } from '../redis/budget.js'
import type { Logger } from './logger.js'

/** Tells stateless verifiers what was revoked; never throws: the revocation itself has already happened. */
export interface RevocationPublisher {
  /** These sessions ended: every access token they issued is refused from now on. */
  sessionsEnded: (sub: string, sids: readonly string[]) => Promise<void>
  /** One access token was revoked (RFC 7009); `expSeconds` is its `exp`. */
  accessTokenRevoked: (sub: string, jti: string, expSeconds: number) => Promise<void>
  /** A signing key leaked: every token it signed is refused until `untilMs`, when the last of them has expired. */
  signingKeyRevoked: (kid: string, untilMs: number) => Promise<void>
}

export interface RevocationPublisherOptions {
  stream: string
  accessTokenTtlSeconds: number
  clockSkewSeconds: number
  now: () => number
  /** Delays before each retry of a failed append (default 100, 200, 400, 800, 1600 ms: about 3 s in all). */
  retryDelaysMs?: readonly number[]
}

/** What became of one append: published, given up after the retries (failed), or tried again (retried). */
export type AppendOutcome = 'published' | 'failed' | 'retried'

const RETRY_DELAYS_MS = [100, 200, 400, 800, 1600]

/**
 * Appends every revocation to `<prefix>revocations` for verifiers to follow.
 * The append comes right after the revocation's own script succeeded (the
 * stream sits in another Redis Cluster slot than the user's keys, so it
 * cannot be part of that script). The first attempt is awaited (within
 * what is left of the request's Redis budget), so the caller's response
 * leaves only once the event is in the feed; a failed one
 * is retried in the background a bounded number of times, then logged as
 * lost. Either way the caller answers success: the session or token is
 * already dead at the auth-service and in introspection, and a client that
 * got an error would retry a revocation that no longer finds anything to
 * revoke (and so would publish nothing either).
 */
export class RedisRevocationPublisher implements RevocationPublisher {
  readonly #redis: RedisClient
  readonly #opts: RevocationPublisherOptions
  readonly #log: Logger
  readonly #outcomes: (outcome: AppendOutcome) => void
  readonly #pending = new Set<NodeJS.Timeout>()
  /** How long the stream keeps an entry: the longest an access token lives, with the skew on both sides. */
  readonly #keepMs: number

  constructor (redis: RedisClient, opts: RevocationPublisherOptions, log: Logger, outcomes: (outcome: AppendOutcome) => void) {
    this.#redis = redis
    this.#opts = opts
    this.#log = log
    this.#outcomes = outcomes
    this.#keepMs = (opts.accessTokenTtlSeconds + 2 * opts.clockSkewSeconds) * 1000
  }

  async sessionsEnded (sub: string, sids: readonly string[]): Promise<void> {
    if (sids.length === 0) return
    const at = this.#opts.now()
    // A session's newest access token was issued at `at` at the latest.
    await this.#publish({ kind: 'sessions', sub, sids, at, until: at + (this.#opts.accessTokenTtlSeconds + this.#opts.clockSkewSeconds) * 1000 })
  }

  async accessTokenRevoked (sub: string, jti: string, expSeconds: number): Promise<void> {
    await this.#publish({ kind: 'token', sub, jti, at: this.#opts.now(), until: (expSeconds + this.#opts.clockSkewSeconds) * 1000 })
  }

  async signingKeyRevoked (kid: string, untilMs: number): Promise<void> {
    await this.#publish({ kind: 'key', kid, at: this.#opts.now(), until: untilMs })
  }

  /** Cancels retries still waiting (at shutdown); each counts as failed. */
  close (): void {
    for (const timer of this.#pending) {
      clearTimeout(timer)
      this.#outcomes('failed')
    }
    if (this.#pending.size > 0) this.#log.error({ events: this.#pending.size }, 'revocation feed: shutting down with events not yet published')
    this.#pending.clear()
  }

  async #publish (event: RevocationEvent): Promise<void> {
    if (await this.#append(event)) return
    this.#retry(event, 0)
  }

  #retry (event: RevocationEvent, attempt: number): void {
    const delays = this.#opts.retryDelaysMs ?? RETRY_DELAYS_MS
    const delay = delays[attempt]
    if (delay === undefined) {
      this.#outcomes('failed')
      // Verifiers following the feed now honour this revocation only when the tokens expire.
      this.#log.error({ event: describe(event), attempts: attempt + 1 }, 'revocation feed: event lost after retries')
      return
    }
    const timer = setTimeout(() => {
      this.#pending.delete(timer)
      this.#outcomes('retried')
      // The timer was set during the request: its budget, spent or not, is not the retry's.
      void withoutRedisBudget(async () => await this.#append(event)).then((published) => { if (!published) this.#retry(event, attempt + 1) })
    }, delay)
    timer.unref()
    this.#pending.add(timer)
  }

  async #append (event: RevocationEvent): Promise<boolean> {
    try {
      await withinRedisBudget(this.#redis.batonPublishRevocation(this.#opts.stream, this.#keepMs, ...encodeRevocationEvent(event)))
      this.#outcomes('published')
      return true
    } catch (error) {
      this.#log.warn({ err: { message: (error as Error).message }, event: describe(event) }, 'revocation feed: append failed')
      return false
    }
  }
}

/** For logs: who and which, but a list of sids only by its length. */
function describe (event: RevocationEvent): Record<string, unknown> {
  if (event.kind === 'key') return { kind: event.kind, kid: event.kid }
  return event.kind === 'sessions'
    ? { kind: event.kind, sub: event.sub, sessions: event.sids.length, sid: event.sids[0] }
    : { kind: event.kind, sub: event.sub, jti: event.jti }
}
