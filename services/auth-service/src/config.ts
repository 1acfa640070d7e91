import { readFileSync } from 'node:fs'
import { envReader, readCommonConfig, ConfigError, type CommonConfig } from '@baton/service-kit'
import { parseScope } from '@baton/tokens'
import { parseClients, type ClientConfig } from './clients.js'
import { parseSigningKey } from './plugins/keyring.js'

export interface Config extends CommonConfig {
  REDIS_URL: string
  /** Milliseconds a Redis command may take before the request fails with 503. */
  REDIS_COMMAND_TIMEOUT: number
  ACCESS_TOKEN_TTL: number
  REFRESH_TOKEN_TTL: number
  SESSION_MAX_TTL: number
  REFRESH_REUSE_GRACE: number
  DEFAULT_SCOPES: readonly string[]
  /** PKCS#8 PEM, from SIGNING_KEY or the file SIGNING_KEY_FILE names; undefined: a generated key kept in Redis. */
  SIGNING_KEY: string | undefined
  /** Secret that authenticates refresh tokens; undefined: generated once and kept in Redis. */
  REFRESH_TOKEN_SECRET: string | undefined
  CLIENTS: readonly ClientConfig[]
  MAX_SESSIONS_PER_USER: number
  ARGON2_MEMORY_KIB: number
  ARGON2_ITERATIONS: number
  ARGON2_PARALLELISM: number
}

/**
 * Reads and validates the auth-service settings once; the result is frozen.
 * Throws a ConfigError that names the first bad variable.
 */
export function loadConfig (env: Readonly<Record<string, string | undefined>>): Config {
  const read = envReader(env)
  const common = readCommonConfig(read, 3001)

  const refreshIdle = read.duration('REFRESH_TOKEN_TTL', '14d', 60)
  const config: Config = {
    ...common,
    REDIS_URL: read.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    REDIS_COMMAND_TIMEOUT: read.int('REDIS_COMMAND_TIMEOUT', 1000, 50, 60_000),
    ACCESS_TOKEN_TTL: read.duration('ACCESS_TOKEN_TTL', '15m', 10, 86_400),
    REFRESH_TOKEN_TTL: refreshIdle,
    SESSION_MAX_TTL: read.duration('SESSION_MAX_TTL', '90d', 60),
    REFRESH_REUSE_GRACE: read.duration('REFRESH_REUSE_GRACE', '10s', 0, 300),
    DEFAULT_SCOPES: readScopes(read.string('DEFAULT_SCOPES', 'profile')),
    SIGNING_KEY: readSigningKey(read.raw('SIGNING_KEY'), read.raw('SIGNING_KEY_FILE')),
    REFRESH_TOKEN_SECRET: readRefreshSecret(read.raw('REFRESH_TOKEN_SECRET')),
    CLIENTS: parseClients(read.json('CLIENTS', [])),
    MAX_SESSIONS_PER_USER: read.int('MAX_SESSIONS_PER_USER', 100, 1, 10_000),
    // OWASP's argon2id floor is m=19 MiB, t=2, p=1: configuration may go up, never below.
    ARGON2_MEMORY_KIB: read.int('ARGON2_MEMORY_KIB', 19_456, 19_456, 4_194_304),
    ARGON2_ITERATIONS: read.int('ARGON2_ITERATIONS', 2, 2, 100),
    ARGON2_PARALLELISM: read.int('ARGON2_PARALLELISM', 1, 1, 16)
  }
  return Object.freeze(config)
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
      parseSigningKey(pem)
    } catch {
      throw new ConfigError(file === undefined ? 'SIGNING_KEY' : 'SIGNING_KEY_FILE', 'must hold an Ed25519 or P-256 private key in PKCS#8 PEM')
    }
  }
  return pem
}

function readRefreshSecret (value: string | undefined): string | undefined {
  if (value !== undefined && Buffer.byteLength(value) < 32) {
    throw new ConfigError('REFRESH_TOKEN_SECRET', 'must be at least 32 bytes long')
  }
  return value
}
