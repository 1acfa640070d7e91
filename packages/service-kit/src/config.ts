import { parseDuration } from '@baton/tokens'

/** A setting that failed validation; its message names the variable and never echoes a secret. */
export class ConfigError extends Error {
  readonly variable: string
  constructor (variable: string, expectation: string) {
    super(`${variable} ${expectation}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

type Env = Readonly<Record<string, string | undefined>>

/**
 * Typed readers over an environment. Each reader returns the default when the
 * variable is unset or empty, and throws a {@link ConfigError} naming the
 * variable otherwise, so a bad setting stops start-up with one clear line.
 *
 * @example
 * const read = envReader(process.env)
 * const port = read.port('PORT', 3001)
 */
export function envReader (env: Env) {
  const raw = (name: string): string | undefined => {
    const value = env[name]
    return value === undefined || value.trim() === '' ? undefined : value.trim()
  }

  return {
    raw,
    string (name: string, fallback: string, pattern?: RegExp): string {
      const value = raw(name) ?? fallback
      if (pattern !== undefined && !pattern.test(value)) {
        throw new ConfigError(name, `must match ${String(pattern)}`)
      }
      return value
    },
    int (name: string, fallback: number, min: number, max: number): number {
      const value = raw(name)
      if (value === undefined) return fallback
      const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN
      if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
        throw new ConfigError(name, `must be an integer from ${min} to ${max}`)
      }
      return parsed
    },
    port (name: string, fallback: number): number {
      return this.int(name, fallback, 0, 65_535)
    },
    /** Seconds, from `900` or `15m`-style values. */
    duration (name: string, fallback: string, min = 0, max = 10 * 365 * 86_400): number {
      const value = raw(name) ?? fallback
      const seconds = parseDuration(value)
      if (seconds === undefined || seconds < min || seconds > max) {
        throw new ConfigError(name, `must be a duration from ${min}s to ${max}s, in seconds or with a unit (s, m, h, d, w), e.g. 900 or 15m`)
      }
      return seconds
    },
    url (name: string, fallback: string, protocols: readonly string[]): string {
      const value = raw(name) ?? fallback
      let url: URL
      try {
        url = new URL(value)
      } catch {
        throw new ConfigError(name, `must be a URL (${protocols.join(', ')})`)
      }
      if (!protocols.includes(url.protocol)) {
        throw new ConfigError(name, `must be a URL with one of the protocols ${protocols.join(', ')}`)
      }
      return value
    },
    oneOf<T extends string> (name: string, fallback: T, values: readonly T[]): T {
      const value = raw(name) ?? fallback
      if (!values.includes(value as T)) {
        throw new ConfigError(name, `must be one of ${values.join(', ')}`)
      }
      return value as T
    },
    json (name: string, fallback: unknown): unknown {
      const value = raw(name)
      if (value === undefined) return fallback
      try {
        return JSON.parse(value)
      } catch {
        throw new ConfigError(name, 'must be valid JSON')
      }
    }
  }
}

export type EnvReader = ReturnType<typeof envReader>

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** Settings every Baton service shares. */
export interface CommonConfig {
  HOST: string
  PORT: number
  REDIS_KEY_PREFIX: string
  ISSUER: string
  AUDIENCE: string
  CLOCK_SKEW: number
  BODY_LIMIT: number
  LOG_LEVEL: LogLevel
  /** When set, `/metrics` needs `Authorization: Bearer <it>`. */
  METRICS_TOKEN: string | undefined
  /** When set, `/metrics` is served on this port (0: any free one) by a listener of its own, and not on PORT. */
  METRICS_PORT: number | undefined
  /** Where that listener binds; default HOST. */
  METRICS_HOST: string
}

export function readCommonConfig (read: EnvReader, defaultPort: number): CommonConfig {
  const host = read.string('HOST', '127.0.0.1')
  const port = read.port('PORT', defaultPort)
  return {
    HOST: host,
    PORT: port,
    // Braces would turn the prefix into a Redis Cluster hash tag and pin every key to one slot.
    REDIS_KEY_PREFIX: read.string('REDIS_KEY_PREFIX', 'baton:', /^[A-Za-z0-9:_.-]{0,64}$/),
    ISSUER: read.url('ISSUER', 'http://127.0.0.1:3001', ['http:', 'https:']).replace(/\/$/, ''),
    AUDIENCE: read.string('AUDIENCE', 'baton-api', /^[\x21-\x7E]{1,256}$/),
    CLOCK_SKEW: read.duration('CLOCK_SKEW', '5s', 0, 300),
    BODY_LIMIT: read.int('BODY_LIMIT', 16_384, 256, 10 * 1024 * 1024),
    LOG_LEVEL: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    ...readMetricsConfig(read, host, port)
  }
}

function readMetricsConfig (read: EnvReader, host: string, port: number): Pick<CommonConfig, 'METRICS_TOKEN' | 'METRICS_PORT' | 'METRICS_HOST'> {
  const token = read.raw('METRICS_TOKEN')
  // The token is compared as a bearer token (RFC 6750 b64token-ish, printable ASCII) and must not be guessable.
  if (token !== undefined && !/^[\x21-\x7E]{16,512}$/.test(token)) {
    throw new ConfigError('METRICS_TOKEN', 'must be 16 to 512 printable ASCII characters without spaces')
  }
  const metricsPort = read.raw('METRICS_PORT') === undefined ? undefined : read.port('METRICS_PORT', 0)
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError('METRICS_PORT', 'must differ from PORT')
  }
  return { METRICS_TOKEN: token, METRICS_PORT: metricsPort, METRICS_HOST: read.string('METRICS_HOST', host) }
}
