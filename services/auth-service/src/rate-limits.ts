import { createHash } from 'node:crypto'
import ipaddr from 'ipaddr.js'
import type { RedisClient } from '@baton/service-kit'
import { BatonError } from '@baton/tokens'
import type { RedisKeys } from './redis-keys.js'
import { storage } from './plugins/redis.js'
import { normalizeUsername } from './user-store.js'

export interface RateLimitSettings {
  /** Failed logins of one username per window before every attempt on it is refused. */
  accountFailures: number
  /** Failed attempts of one client IP per window before its every attempt is refused. */
  ipFailures: number
  failureWindowMs: number
  /** Password-grant and registration attempts of one client IP per minute, failed or not. */
  ipAttemptsPerMinute: number
}

/** Which limit refused an attempt: the `limit` of a `login.locked` audit event. */
export type LimitName = 'ip_attempts' | 'ip_failures' | 'account_failures'

export class RateLimitedError extends BatonError {
  readonly limit: LimitName
  readonly retryAfterMs: number
  constructor (limit: LimitName, retryAfterMs: number) {
    // One answer for every limit and every password: nothing here tells an attacker which limit or whether the account exists.
    super('BATON_RATE_LIMITED', 'too many attempts; try again later', {
      headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
    })
    this.limit = limit
    this.retryAfterMs = retryAfterMs
  }
}

/** A login that got past the limits; counted as failed until `succeeded` says otherwise. */
export interface LoginAttempt {
  succeeded: () => Promise<void>
}

const MINUTE = 60_000

/**
 * The bucket an address is counted in: IPv4 addresses (IPv4-mapped ones
 * too) one by one, IPv6 by /64, the smallest block a single customer gets,
 * so one host cannot dodge the limits by hopping through its own prefix.
 */
export function ipBucket (ip: string): string {
  if (!ipaddr.isValid(ip)) return ip.slice(0, 64)
  const address = ipaddr.process(ip)
  if (address.kind() === 'ipv4') return address.toString()
  const groups = (address as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16))
  return `${groups.join(':')}::/64`
}

/** Usernames are counted by a hash of their normalized form: a bounded key that keeps no name in clear. */
function accountKeyPart (username: string): string {
  return createHash('sha256').update(normalizeUsername(username)).digest('base64url')
}

/**
 * Brute-force and credential-stuffing limits for the password grant,
 * registration and password changes, kept in Redis so every instance
 * counts together. An attempt reserves a failure before the password is
 * hashed (one script checks and counts), and gives it back only when it
 * succeeds: however many guesses arrive at once, no more than the limit are
 * ever checked. A refused attempt never reaches the password hasher, so a
 * locked account answers the right password exactly as a wrong one.
 */
export class RateLimiter {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #settings: RateLimitSettings
  readonly #deadline: () => number

  /** `deadline`: the Redis time after which a count sent now must not run (RedisClock). */
  constructor (redis: RedisClient, keys: RedisKeys, settings: RateLimitSettings, deadline: () => number = () => 0) {
    this.#redis = redis
    this.#keys = keys
    this.#settings = settings
    this.#deadline = deadline
  }

  /** Admits one password check for `username` from `ip`, or throws a RateLimitedError (429). */
  async admitLogin (ip: string, username: string): Promise<LoginAttempt> {
    const bucket = ipBucket(ip)
    const { failureWindowMs: window } = this.#settings
    // The IP first: an attacker already refused by IP does not add to the victim account's count.
    await this.#count([
      [this.#keys.ipAttempts(bucket), 1, this.#settings.ipAttemptsPerMinute, MINUTE, 'ip_attempts'],
      [this.#keys.ipFailures(bucket), 1, this.#settings.ipFailures, window, 'ip_failures']
    ])
    const account = this.#keys.accountFailures(accountKeyPart(username))
    await this.#count([[account, 1, this.#settings.accountFailures, window, 'account_failures']])
    return {
      succeeded: async () => {
        // Whoever knows the password is forgiven the account's earlier failures; the IP only gets back this attempt's reservation.
        await Promise.all([
          storage(this.#redis.del(account)),
          this.#count([[this.#keys.ipFailures(bucket), -1, 0, window, 'ip_failures']])
        ])
      }
    }
  }

  /** Admits one registration from `ip` (attempts per minute, and not once the IP's failures are spent). */
  async admitRegistration (ip: string): Promise<void> {
    const bucket = ipBucket(ip)
    await this.#count([
      [this.#keys.ipAttempts(bucket), 1, this.#settings.ipAttemptsPerMinute, MINUTE, 'ip_attempts'],
      [this.#keys.ipFailures(bucket), 0, this.#settings.ipFailures, this.#settings.failureWindowMs, 'ip_failures']
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
    const [waitMs, refusedBy] = await storage(this.#redis.batonRateLimit(counters.length, ...args))
    if (waitMs > 0) throw new RateLimitedError(counters[refusedBy - 1]![4], waitMs)
  }
}
