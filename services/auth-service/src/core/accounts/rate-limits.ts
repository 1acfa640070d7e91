import { createHash } from 'node:crypto'
import { BatonError } from '@baton/tokens'
import type { RedisClient } from '../../redis/client.js'
import type { RedisKeys } from '../../redis/keys.js'
import { storage } from '../../redis/errors.js'
import type { AuditFields, Events, LimitName, LimitedAction } from '../events.js'
import { ipBucket } from '../ip-bucket.js'
import type { DeviceTokenCodec } from '../sessions/device-token.js'
import { normalizeUsername } from './user-store.js'

export interface RateLimitSettings {
  /** Failed logins of one username per window, from clients it does not know and from each known client, before that budget is locked. */
  accountFailures: number
  /** Failed attempts of one client IP per window before its every attempt is refused. */
  ipFailures: number
  failureWindowMs: number
  /** Password-grant and registration attempts of one client IP per minute, failed or not. */
  ipAttemptsPerMinute: number
  /** How long a client that logged in stays known to the account: its device token, its address. */
  knownClientMs: number
  /** Registrations of one client IP per registration window. */
  registrations: number
  registrationWindowMs: number
}

/** How an account knows a client, which then has a failure budget of its own: a device token, or the address of a login that succeeded. */
export type KnownClient = 'device' | 'address'

export class RateLimitedError extends BatonError {
  readonly limit: LimitName
  readonly retryAfterMs: number
  /** The first refusal of this limit in its window: a flood of refusals is one warning, not one per request. */
  readonly firstRefusal: boolean
  /** Whose budget of the account is spent: a known client's own; undefined: the one of clients the account does not know. */
  readonly knownClient: KnownClient | undefined
  constructor (limit: LimitName, retryAfterMs: number, firstRefusal: boolean, knownClient?: KnownClient) {
    // One answer for every limit and every password: nothing here tells an attacker which limit or whether the account exists.
    super('BATON_RATE_LIMITED', 'too many attempts; try again later', {
      headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
    })
    this.limit = limit
    this.retryAfterMs = retryAfterMs
    this.firstRefusal = firstRefusal
    this.knownClient = knownClient
  }
}

/** A login that got past the limits; counted as failed until `succeeded` says otherwise. */
export interface LoginAttempt {
  /** Forgives the failures of the client's budget, gives back the IP's reservation, and makes the client's address known to the account. */
  succeeded: () => Promise<void>
  /** A device token that makes the client known to the account at its next logins: the one it presented, renewed, or a new one. */
  deviceToken: () => string
}

/** What makes clients known: the codec of device tokens, and the clock they are issued by. */
export interface KnownClients {
  deviceTokens: DeviceTokenCodec
  now: () => number
}

const MINUTE = 60_000

/** Usernames are counted by a hash of their normalized form: a bounded key that keeps no name in clear; device tokens are bound to it. */
function accountDigest (username: string): Buffer {
  return createHash('sha256').update(normalizeUsername(username)).digest()
}

/**
 * Brute-force and credential-stuffing limits for the password grant,
 * registration and password changes, kept in Redis so every instance
 * counts together. An attempt reserves a failure before the password is
 * hashed (one script checks and counts), and gives it back only when it
 * succeeds: however many guesses arrive at once, no more than the limit are
 * ever checked. A refused attempt never reaches the password hasher, so a
 * locked account answers the right password exactly as a wrong one.
 *
 * An account counts failures per client budget (OWASP, "lockout abuse"): a
 * client that has logged in to it before, proven by a device token or by
 * coming from the address of a successful login, fails against a budget of
 * its own, so an attacker elsewhere locks out the clients the account does
 * not know, never its owner's.
 */
export class RateLimiter {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #settings: RateLimitSettings
  readonly #deadline: () => number
  readonly #known: KnownClients

  /** `deadline`: the Redis time after which a count sent now must not run (RedisClock). */
  constructor (redis: RedisClient, keys: RedisKeys, settings: RateLimitSettings, deadline: () => number, known: KnownClients) {
    this.#redis = redis
    this.#keys = keys
    this.#settings = settings
    this.#deadline = deadline
    this.#known = known
  }

  /**
   * Admits one password check for `username` from `ip`, or throws a RateLimitedError (429).
   * `deviceToken`: what an earlier login gave the client; one that is forged, expired or another account's counts as none.
   */
  async admitLogin (ip: string, username: string, deviceToken?: string): Promise<LoginAttempt> {
    const bucket = ipBucket(ip)
    const { failureWindowMs: window } = this.#settings
    const ipFailures = this.#keys.ipFailures(bucket)
    // The IP first: an attacker already refused by IP does not add to the victim account's count.
    await this.#count([
      [this.#keys.ipAttempts(bucket), 1, this.#settings.ipAttemptsPerMinute, MINUTE, 'ip_attempts'],
      [ipFailures, 1, this.#settings.ipFailures, window, 'ip_failures']
    ])
    const account = accountDigest(username)
    const accountKey = account.toString('base64url')
    const device = deviceToken === undefined ? undefined : this.#known.deviceTokens.deviceOf(deviceToken, account, this.#known.now())
    const budgets = [
      this.#keys.accountFailures(accountKey),
      device === undefined ? this.#keys.addressFailures(accountKey, bucket) : this.#keys.deviceFailures(accountKey, device)
    ]
    const knownAddress = this.#keys.knownAddress(accountKey, bucket)
    const [waitMs, budget, first] = await storage(this.#redis.batonAccountLimit(
      budgets[0]!, budgets[1]!, knownAddress, device === undefined ? '0' : '1', this.#settings.accountFailures, window, this.#deadline()))
    if (waitMs > 0) throw new RateLimitedError('account_failures', waitMs, first === 1, budget === 1 ? undefined : device === undefined ? 'address' : 'device')
    return {
      succeeded: async () => {
        // Whoever knows the password is forgiven the earlier failures of its own budget (not other clients');
        // the IP only gets back this attempt's reservation.
        await Promise.all([
          storage(this.#redis.del(budgets[budget - 1]!)),
          storage(this.#redis.set(knownAddress, '1', 'PX', this.#settings.knownClientMs)),
          this.#count([[ipFailures, -1, 0, window, 'ip_failures']])
        ])
      },
      deviceToken: () => this.#known.deviceTokens.issue(account, this.#known.now(), device)
    }
  }

  /**
   * Admits one registration from `ip`: within the IP's registrations per window and attempts
   * per minute, and not once its failures are spent.
   */
  async admitRegistration (ip: string): Promise<void> {
    const bucket = ipBucket(ip)
    await this.#count([
      [this.#keys.ipAttempts(bucket), 1, this.#settings.ipAttemptsPerMinute, MINUTE, 'ip_attempts'],
      [this.#keys.ipFailures(bucket), 0, this.#settings.ipFailures, this.#settings.failureWindowMs, 'ip_failures'],
      [this.#keys.ipRegistrations(bucket), 1, this.#settings.registrations, this.#settings.registrationWindowMs, 'ip_registrations']
    ])
  }

  /** A registration that hit a taken username: probing for accounts counts as a failure of the IP. */
  async registrationFailed (ip: string): Promise<void> {
    await this.#count([[this.#keys.ipFailures(ipBucket(ip)), 1, 0, this.#settings.failureWindowMs, 'ip_failures']])
  }

  async #count (counters: Array<[key: string, increment: number, limit: number, windowMs: number, name: LimitName]>): Promise<void> {
    const args: Array<string | number> = counters.map(([key]) => key)
    for (const [, increment, limit, windowMs] of counters) args.push(increment, limit, windowMs)
    args.push(this.#deadline())
    const [waitMs, refusedBy, first] = await storage(this.#redis.batonRateLimit(counters.length, ...args))
    if (waitMs > 0) throw new RateLimitedError(counters[refusedBy - 1]![4], waitMs, first === 1)
  }
}

/**
 * Awaits a rate-limit admission for `action`. A refusal is counted, and
 * audited (`login.locked`, `registration.limited`) with the limit that
 * refused as its reason (and `known_client` when a known client's own budget
 * is spent). Only the first refusal of a limit's window is audited, so a
 * flood of 429s is one warning per address (or account) and window.
 */
export async function admitted<T> (admission: Promise<T>, action: LimitedAction, events: Events, fields: AuditFields = {}): Promise<T> {
  try {
    return await admission
  } catch (error) {
    if (error instanceof RateLimitedError) {
      events.rateLimited(action, error.limit)
      if (error.firstRefusal) {
        events.audit(action === 'registration' ? 'registration.limited' : 'login.locked',
          { ...fields, reason: error.limit, known_client: error.knownClient, retry_after_ms: error.retryAfterMs })
      }
    }
    throw error
  }
}
