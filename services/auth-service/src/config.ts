import { availableParallelism } from 'node:os'
import { readFileSync } from 'node:fs'
import ipaddr from 'ipaddr.js'
import { DPOP_ALGORITHMS, type DpopAlgorithm } from '@baton/verifier/dpop'
import { envReader, readCommonConfig, readRedisTarget, ConfigError, type CommonConfig, type RedisTarget } from '@baton/service-kit'
import { parseScope } from '@baton/tokens'
import { parseClients, type ClientConfig } from './core/clients/clients.js'
import { parseOriginList } from './core/clients/origins.js'
import { SettingError } from './core/errors.js'
import { MAX_SIGNING_KEYS, type RotationPolicy } from './core/keys/rotation-policy.js'
import { parseSuppliedKeys } from './core/keys/signing-key.js'
import type { Argon2Parameters } from './core/accounts/password-hasher.js'
import type { RateLimitSettings } from './core/accounts/rate-limits.js'
import type { SessionLifetimes } from './core/sessions/session-store.js'
import type { Replication } from './redis/replication.js'

export interface Config extends CommonConfig {
  /** Where Redis is: REDIS_CLUSTER_NODES, else REDIS_SENTINELS, else REDIS_URL. */
  REDIS: RedisTarget
  /** Milliseconds a Redis command may take before the request fails with 503. */
  REDIS_COMMAND_TIMEOUT: number
  /** Replicas that must hold a session write (WAIT) before a token is handed out; 0: the master's word. */
  REDIS_WAIT_REPLICAS: number
  ACCESS_TOKEN_TTL: number
  REFRESH_TOKEN_TTL: number
  SESSION_MAX_TTL: number
  REFRESH_REUSE_GRACE: number
  /** Retries of one rotation answered inside REFRESH_REUSE_GRACE; further ones get invalid_grant. */
  REFRESH_GRACE_RETRIES: number
  DEFAULT_SCOPES: readonly string[]
  /** PEM text from SIGNING_KEY or the file SIGNING_KEY_FILE names: the first key signs, further ones are only published; undefined: generated keys kept in Redis. */
  SIGNING_KEY: string | undefined
  /** Secret that authenticates refresh tokens; undefined: generated once and kept in Redis. */
  REFRESH_TOKEN_SECRET: string | undefined
  CLIENTS: readonly ClientConfig[]
  /** Origins whose pages may call the auth-service with credentials (CORS), and use a cookie-mode client; empty: none. */
  CORS_ORIGINS: readonly string[]
  MAX_SESSIONS_PER_USER: number
  ARGON2_MEMORY_KIB: number
  ARGON2_ITERATIONS: number
  ARGON2_PARALLELISM: number
  /** Password hashes computed at once; default one per CPU. */
  ARGON2_CONCURRENCY: number
  // Key rotation (seconds)
  /** Cache-Control max-age of the JWKS. */
  JWKS_MAX_AGE: number
  /** How often each instance reads the generated keyring from Redis. */
  KEYRING_RELOAD_INTERVAL: number
  /** How long a new key is published before it signs; at least JWKS_MAX_AGE + KEYRING_RELOAD_INTERVAL. */
  KEY_PUBLISH_AHEAD: number
  /** How long a generated key signs before the next is added; 0: only `baton-admin keys rotate` rotates. */
  KEY_ROTATION_INTERVAL: number
  // Brute-force limits
  /** Failed logins of one username per RATE_LIMIT_FAILURE_WINDOW before the account is locked for the rest of it. */
  RATE_LIMIT_ACCOUNT_FAILURES: number
  /** Failed attempts of one client IP (IPv6: /64) per window before the IP is locked out. */
  RATE_LIMIT_IP_FAILURES: number
  /** Seconds a failure counts, and the longest a lock lasts. */
  RATE_LIMIT_FAILURE_WINDOW: number
  /** Password-grant and registration attempts of one client IP per minute; at least 100. */
  RATE_LIMIT_IP_ATTEMPTS: number
  /** Seconds a client that logged in stays known to the account (its device token, its address) and keeps a failure budget of its own. */
  RATE_LIMIT_KNOWN_CLIENT_TTL: number
  /** Registrations of one client IP (IPv6: /64) per RATE_LIMIT_REGISTRATION_WINDOW. */
  RATE_LIMIT_REGISTRATIONS: number
  /** Seconds a registration counts. */
  RATE_LIMIT_REGISTRATION_WINDOW: number
  /** Proxies whose X-Forwarded-For is believed (addresses, CIDR blocks, or loopback / linklocal / uniquelocal); empty: none. */
  TRUST_PROXY: readonly string[]
  // DPoP (RFC 9449) at the token endpoint
  /** The algorithms a DPoP proof may be signed with, published as dpop_signing_alg_values_supported. */
  DPOP_SIGNING_ALGS: readonly DpopAlgorithm[]
  /** Seconds after its iat that a proof is still accepted (plus CLOCK_SKEW); its jti is remembered that long. */
  DPOP_PROOF_MAX_AGE: number
  /** required: every proof must carry a fresh server nonce (RFC 9449 §8). */
  DPOP_NONCE: 'off' | 'required'
  /** Seconds one nonce period lasts; a nonce is accepted in its period and the next. */
  DPOP_NONCE_LIFETIME: number
}

/**
 * Reads and validates the auth-service settings once; the result is frozen.
 * Throws a ConfigError that names the first bad variable.
 */
export function loadConfig (env: Readonly<Record<string, string | undefined>>): Config {
  const read = envReader(env)
  const common = readCommonConfig(read, 3001)

  const refreshIdle = read.duration('REFRESH_TOKEN_TTL', '14d', 60)
  const corsOrigins = readSetting(() => parseOriginList(read.string('CORS_ORIGINS', ''), 'CORS_ORIGINS'))
  const config: Config = {
    ...common,
    REDIS: readRedisTarget(read),
    REDIS_COMMAND_TIMEOUT: read.int('REDIS_COMMAND_TIMEOUT', 1000, 50, 60_000),
    REDIS_WAIT_REPLICAS: read.int('REDIS_WAIT_REPLICAS', 0, 0, 16),
    ACCESS_TOKEN_TTL: read.duration('ACCESS_TOKEN_TTL', '15m', 10, 86_400),
    REFRESH_TOKEN_TTL: refreshIdle,
    SESSION_MAX_TTL: read.duration('SESSION_MAX_TTL', '90d', 60),
    REFRESH_REUSE_GRACE: read.duration('REFRESH_REUSE_GRACE', '10s', 0, 300),
    // A lost response and a few tabs waking together; each retry mints one more access token.
    REFRESH_GRACE_RETRIES: read.int('REFRESH_GRACE_RETRIES', 5, 1, 100),
    DEFAULT_SCOPES: readScopes(read.string('DEFAULT_SCOPES', 'profile')),
    SIGNING_KEY: readSigningKey(read.raw('SIGNING_KEY'), read.raw('SIGNING_KEY_FILE')),
    REFRESH_TOKEN_SECRET: readRefreshSecret(read.raw('REFRESH_TOKEN_SECRET')),
    CLIENTS: readSetting(() => parseClients(read.json('CLIENTS', []), corsOrigins)),
    CORS_ORIGINS: corsOrigins,
    MAX_SESSIONS_PER_USER: read.int('MAX_SESSIONS_PER_USER', 100, 1, 10_000),
    // OWASP's argon2id floor is m=19 MiB, t=2, p=1: configuration may go up, never below.
    ARGON2_MEMORY_KIB: read.int('ARGON2_MEMORY_KIB', 19_456, 19_456, 4_194_304),
    ARGON2_ITERATIONS: read.int('ARGON2_ITERATIONS', 2, 2, 100),
    ARGON2_PARALLELISM: read.int('ARGON2_PARALLELISM', 1, 1, 16),
    ARGON2_CONCURRENCY: read.int('ARGON2_CONCURRENCY', availableParallelism(), 1, 256),
    ...readKeyRotation(read),
    RATE_LIMIT_ACCOUNT_FAILURES: read.int('RATE_LIMIT_ACCOUNT_FAILURES', 10, 1, 1_000_000_000),
    RATE_LIMIT_IP_FAILURES: read.int('RATE_LIMIT_IP_FAILURES', 100, 1, 1_000_000_000),
    RATE_LIMIT_FAILURE_WINDOW: read.duration('RATE_LIMIT_FAILURE_WINDOW', '15m', 1, 86_400),
    // The contract: limiting all of an IP's attempts never goes below 100 a minute (a NAT can hide a whole office).
    RATE_LIMIT_IP_ATTEMPTS: read.int('RATE_LIMIT_IP_ATTEMPTS', 600, 100, 1_000_000_000),
    RATE_LIMIT_KNOWN_CLIENT_TTL: read.duration('RATE_LIMIT_KNOWN_CLIENT_TTL', '30d', 60, 365 * 86_400),
    // Registrations are permanent: far fewer per address than logins (the 100-a-minute floor is the password grant's).
    RATE_LIMIT_REGISTRATIONS: read.int('RATE_LIMIT_REGISTRATIONS', 10, 1, 1_000_000_000),
    RATE_LIMIT_REGISTRATION_WINDOW: read.duration('RATE_LIMIT_REGISTRATION_WINDOW', '1h', 1, 7 * 86_400),
    TRUST_PROXY: readTrustedProxies(read.string('TRUST_PROXY', '')),
    DPOP_SIGNING_ALGS: readDpopAlgorithms(read.string('DPOP_SIGNING_ALGS', DPOP_ALGORITHMS.join(' '))),
    // A proof is made for one request: a minute covers a slow network, not a stockpile.
    DPOP_PROOF_MAX_AGE: read.duration('DPOP_PROOF_MAX_AGE', '60s', 1, 300),
    DPOP_NONCE: read.oneOf('DPOP_NONCE', 'off', ['off', 'required'] as const),
    DPOP_NONCE_LIFETIME: read.duration('DPOP_NONCE_LIFETIME', '5m', 10, 86_400)
  }
  return Object.freeze(config)
}

type KeyRotationConfig = Pick<Config, 'JWKS_MAX_AGE' | 'KEYRING_RELOAD_INTERVAL' | 'KEY_PUBLISH_AHEAD' | 'KEY_ROTATION_INTERVAL'>

function readKeyRotation (read: ReturnType<typeof envReader>): KeyRotationConfig {
  const maxAge = read.duration('JWKS_MAX_AGE', '5m', 0, 86_400)
  const reload = read.duration('KEYRING_RELOAD_INTERVAL', '5s', 1, 300)
  // A verifier may hold a key set for max-age, and another instance may serve one
  // up to a reload old; twice max-age leaves room for a shared HTTP cache in front.
  const floor = maxAge + reload
  const publishAhead = read.duration('KEY_PUBLISH_AHEAD', String(2 * maxAge + reload), 1, 30 * 86_400)
  if (publishAhead < floor) {
    throw new ConfigError('KEY_PUBLISH_AHEAD', `must be at least JWKS_MAX_AGE + KEYRING_RELOAD_INTERVAL (${floor}s), or verifiers would meet a key before their cached key set holds it`)
  }
  return {
    JWKS_MAX_AGE: maxAge,
    KEYRING_RELOAD_INTERVAL: reload,
    KEY_PUBLISH_AHEAD: publishAhead,
    KEY_ROTATION_INTERVAL: read.duration('KEY_ROTATION_INTERVAL', '30d', 0)
  }
}

const PROXY_SUBNET_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function readTrustedProxies (value: string): readonly string[] {
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  for (const entry of entries) {
    if (!PROXY_SUBNET_NAMES.has(entry) && !ipaddr.isValid(entry) && !ipaddr.isValidCIDR(entry)) {
      throw new ConfigError('TRUST_PROXY', `"${entry.slice(0, 64)}" is not an IP address, a CIDR block, or loopback / linklocal / uniquelocal`)
    }
  }
  return Object.freeze(entries)
}

function readDpopAlgorithms (value: string): readonly DpopAlgorithm[] {
  const algorithms = [...new Set(value.split(/[\s,]+/).filter((alg) => alg !== ''))]
  const unknown = algorithms.find((alg) => !(DPOP_ALGORITHMS as readonly string[]).includes(alg))
  if (algorithms.length === 0 || unknown !== undefined) {
    throw new ConfigError('DPOP_SIGNING_ALGS', `must list some of ${DPOP_ALGORITHMS.join(', ')}${unknown === undefined ? '' : `, not "${unknown.slice(0, 32)}"`}`)
  }
  return Object.freeze(algorithms as DpopAlgorithm[])
}

function readScopes (value: string): readonly string[] {
  const scopes = parseScope(value)
  if (scopes === undefined) throw new ConfigError('DEFAULT_SCOPES', 'must be a space-separated list of RFC 6749 scope tokens')
  return scopes
}

function readSigningKey (inline: string | undefined, file: string | undefined): string | undefined {
  if (inline !== undefined && file !== undefined) {
    throw new ConfigError('SIGNING_KEY_FILE', 'cannot be set together with SIGNING_KEY')
  }
  let pem: string | undefined
  if (file !== undefined) {
    try {
      pem = readFileSync(file, 'utf8')
    } catch {
      throw new ConfigError('SIGNING_KEY_FILE', 'must name a readable PKCS#8 PEM file')
    }
  } else {
    // Environments that cannot hold newlines may write them as \n.
    pem = inline?.replace(/\\n/g, '\n')
  }
  if (pem !== undefined) {
    try {
      parseSuppliedKeys(pem)
    } catch (error) {
      throw new ConfigError(file === undefined ? 'SIGNING_KEY' : 'SIGNING_KEY_FILE', (error as Error).message)
    }
  }
  return pem
}

/** A setting the domain validates: its SettingError becomes the one-line ConfigError. */
function readSetting<T> (parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    if (error instanceof SettingError) throw new ConfigError(error.path, error.expectation)
    throw error
  }
}

function readRefreshSecret (value: string | undefined): string | undefined {
  if (value !== undefined && Buffer.byteLength(value) < 32) {
    throw new ConfigError('REFRESH_TOKEN_SECRET', 'must be at least 32 bytes long')
  }
  return value
}

// What the settings mean to the domain, for the app and the operator commands alike.

export function sessionLifetimes (config: Config): SessionLifetimes {
  return {
    idleMs: config.REFRESH_TOKEN_TTL * 1000,
    absoluteMs: config.SESSION_MAX_TTL * 1000,
    graceMs: config.REFRESH_REUSE_GRACE * 1000,
    graceRetries: config.REFRESH_GRACE_RETRIES,
    maxSessionsPerUser: config.MAX_SESSIONS_PER_USER
  }
}

/** How many replicas must hold a session write before a token is handed out. */
export function sessionReplication (config: Config): Replication {
  // Half the command timeout for WAIT, so a replica that lags answers 503 before the command itself times out.
  return { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: Math.floor(config.REDIS_COMMAND_TIMEOUT / 2) }
}

export function rateLimitSettings (config: Config): RateLimitSettings {
  return {
    accountFailures: config.RATE_LIMIT_ACCOUNT_FAILURES,
    ipFailures: config.RATE_LIMIT_IP_FAILURES,
    failureWindowMs: config.RATE_LIMIT_FAILURE_WINDOW * 1000,
    ipAttemptsPerMinute: config.RATE_LIMIT_IP_ATTEMPTS,
    knownClientMs: config.RATE_LIMIT_KNOWN_CLIENT_TTL * 1000,
    registrations: config.RATE_LIMIT_REGISTRATIONS,
    registrationWindowMs: config.RATE_LIMIT_REGISTRATION_WINDOW * 1000
  }
}

export function argon2Parameters (config: Config): Argon2Parameters {
  return {
    memoryKiB: config.ARGON2_MEMORY_KIB,
    iterations: config.ARGON2_ITERATIONS,
    parallelism: config.ARGON2_PARALLELISM,
    concurrency: config.ARGON2_CONCURRENCY
  }
}

export function rotationPolicy (config: Config): RotationPolicy {
  return {
    publishAheadMs: config.KEY_PUBLISH_AHEAD * 1000,
    // A token may be signed up to one reload late by an instance that missed the
    // newest keyring once, and lives ACCESS_TOKEN_TTL plus the verifiers' leeway.
    retireAfterMs: (config.ACCESS_TOKEN_TTL + config.CLOCK_SKEW + config.KEYRING_RELOAD_INTERVAL) * 1000,
    rotationIntervalMs: config.KEY_ROTATION_INTERVAL * 1000,
    reloadIntervalMs: config.KEYRING_RELOAD_INTERVAL * 1000,
    maxKeys: MAX_SIGNING_KEYS
  }
}
