import { ConfigError, envReader, readCommonConfig, readRedisTarget, type CommonConfig, type EnvReader, type RedisTarget } from '@baton/service-kit'

/** The resource-service's settings, validated once at start-up. */
export interface Config extends CommonConfig {
  /** Where the trusted issuer publishes its public keys. */
  JWKS_URL: string
  /** Seconds: least time between two key-set fetches caused by unknown kids. */
  JWKS_MIN_REFETCH_INTERVAL: number
  /** The Redis that carries the auth-service's revocation feed; undefined: no feed, no Redis at all. */
  REDIS_URL: string | undefined
  /** Where that Redis is (one server, Sentinel or a cluster), read as the auth-service reads it; undefined: no feed. */
  REDIS: RedisTarget | undefined
  /** Web origins whose pages may call the API from a browser (CORS); empty: none, the API answers browsers of its own origin only. */
  CORS_ORIGINS: readonly string[]
  /** The URL clients call the API at, which DPoP proofs name; undefined: worked out from each request's Host header. */
  PUBLIC_URL: string | undefined
}

/**
 * Reads and validates the environment; a bad value throws a ConfigError
 * naming the variable.
 *
 * @example loadConfig({ ISSUER: 'https://auth.example.com' }).JWKS_URL // 'https://auth.example.com/.well-known/jwks.json'
 */
export function loadConfig (env: Readonly<Record<string, string | undefined>>): Readonly<Config> {
  const read = envReader(env)
  const common = readCommonConfig(read, 3002)
  // No default: only a service told where the feed is follows one; otherwise it stays stateless.
  const feedConfigured = ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'].some((name) => read.raw(name) !== undefined)
  const redis = feedConfigured ? readRedisTarget(read) : undefined
  return Object.freeze({
    ...common,
    JWKS_URL: read.url('JWKS_URL', `${common.ISSUER}/.well-known/jwks.json`, ['http:', 'https:']),
    // At least a second: each unknown kid may cost the issuer one request per interval.
    JWKS_MIN_REFETCH_INTERVAL: read.duration('JWKS_MIN_REFETCH_INTERVAL', '10s', 1, 3600),
    REDIS_URL: redis?.mode === 'standalone' ? redis.url : undefined,
    REDIS: redis,
    CORS_ORIGINS: readOrigins(read, 'CORS_ORIGINS'),
    PUBLIC_URL: readPublicUrl(read, 'PUBLIC_URL')
  })
}

/** An http(s) URL without query or fragment, for the `htu` of DPoP proofs; unset: undefined. */
function readPublicUrl (read: EnvReader, name: string): string | undefined {
  if (read.raw(name) === undefined) return undefined
  const url = new URL(read.url(name, '', ['http:', 'https:']))
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new ConfigError(name, 'must be the URL clients call the API at, such as https://api.example.com, without credentials, query or fragment')
  }
  return url.href.replace(/\/$/, '')
}

/** A comma-separated list of web origins (`https://app.example.com`, `http://localhost:3000`), as the auth-service reads its own CORS_ORIGINS. */
function readOrigins (read: EnvReader, name: string): readonly string[] {
  const origins = (read.raw(name) ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  for (const origin of origins) {
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {}
    // An origin is a scheme, host and port and nothing else; a path or a trailing slash would never match a browser's Origin header.
    if (parsed === undefined || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(name, 'must be a list of origins such as https://app.example.com or http://localhost:3000 (scheme, host and port only), separated by commas')
    }
  }
  return Object.freeze([...new Set(origins)])
}
