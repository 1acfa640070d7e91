import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { ConfigError, type EnvReader } from './config.js'

/** host and port of one Redis node or Sentinel. */
export interface RedisNode {
  host: string
  port: number
}

/** What the node URLs of a list share: the credentials and whether TLS is on. */
export interface RedisAuth {
  username?: string
  password?: string
  tls: boolean
}

/**
 * Where Redis is: one server by URL, a Redis Cluster by its seed nodes, or
 * the master a set of Sentinels watches.
 */
export type RedisTarget =
  | { mode: 'standalone', url: string }
  | ({ mode: 'cluster', nodes: RedisNode[] } & RedisAuth)
  | ({ mode: 'sentinel', sentinels: RedisNode[], name: string, sentinelPassword?: string } & RedisAuth)

export interface RedisClientOptions {
  /** A command slower than this fails (ms); every other timeout derives from it. */
  commandTimeoutMs: number
  /** Default true: the caller calls `connect()` (and may start while Redis is down). */
  lazyConnect?: boolean
  /**
   * Commands issued in one tick share one write (ioredis `enableAutoPipelining`); never for a client that blocks.
   * Default false; not for a cluster, where ioredis 5 writes an auto-pipeline to a node connection before it exists.
   */
  autoPipelining?: boolean
}

/** Either kind of ioredis client; both carry every command, `defineCommand` included. */
export type RedisClient = Redis | Cluster

/** A URL's user name or password, percent-decoded; a stray `%` is a ConfigError, not a URIError at start-up. */
function decodeCredential (variable: string, encoded: string): string {
  try {
    return decodeURIComponent(encoded)
  } catch {
    throw new ConfigError(variable, 'credentials must be percent-encoded: a "%" is followed by two hex digits')
  }
}

/**
 * Parses a comma-separated list of `host:port` or `redis[s]://[user:password@]host:port`
 * entries. Every entry must agree on the scheme and the credentials, which then
 * apply to every node; a bad list throws a ConfigError naming `variable`.
 *
 * @example
 * parseRedisNodes('REDIS_CLUSTER_NODES', 'rediss://:pw@10.0.0.1:6379,10.0.0.2:6379')
 * // throws: the second entry lacks the scheme and password of the first
 */
export function parseRedisNodes (variable: string, value: string): { nodes: RedisNode[] } & RedisAuth {
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  if (entries.length === 0) throw new ConfigError(variable, 'must list at least one host:port')
  const nodes: RedisNode[] = []
  let shared: string | undefined
  let auth: RedisAuth = { tls: false }
  for (const entry of entries) {
    let url: URL
    try {
      url = new URL(/^[a-z]+:\/\//i.test(entry) ? entry : `redis://${entry}`)
    } catch {
      throw new ConfigError(variable, 'must be a comma-separated list of host:port or redis://host:port entries')
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new ConfigError(variable, 'entries must be host:port or use the protocol redis: or rediss:')
    }
    if (url.port === '' || url.hostname === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
      throw new ConfigError(variable, 'entries must be host:port (with the port), without a path or database number')
    }
    const entryAuth: RedisAuth = {
      tls: url.protocol === 'rediss:',
      ...(url.username !== '' ? { username: decodeCredential(variable, url.username) } : {}),
      ...(url.password !== '' ? { password: decodeCredential(variable, url.password) } : {})
    }
    // Entries without a scheme or credentials inherit the first entry's; explicit ones must agree.
    const explicit = /^[a-z]+:\/\//i.test(entry)
    const signature = JSON.stringify(entryAuth)
    if (explicit) {
      if (shared !== undefined && shared !== signature) {
        throw new ConfigError(variable, 'entries must all use the same scheme and credentials')
      }
      shared = signature
      auth = entryAuth
    }
    nodes.push({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) })
  }
  return { nodes, ...auth }
}

/**
 * Reads where Redis is: `REDIS_CLUSTER_NODES` (a Redis Cluster's seed nodes),
 * else `REDIS_SENTINELS` with `REDIS_SENTINEL_NAME` (and `REDIS_SENTINEL_PASSWORD`
 * if the Sentinels require one), else `REDIS_URL`.
 */
export function readRedisTarget (read: EnvReader, fallbackUrl = 'redis://127.0.0.1:6379'): RedisTarget {
  const clusterNodes = read.raw('REDIS_CLUSTER_NODES')
  const sentinels = read.raw('REDIS_SENTINELS')
  if (clusterNodes !== undefined && sentinels !== undefined) {
    throw new ConfigError('REDIS_SENTINELS', 'cannot be set together with REDIS_CLUSTER_NODES: Sentinel watches a single master, a cluster fails over by itself')
  }
  if (clusterNodes !== undefined) return { mode: 'cluster', ...parseRedisNodes('REDIS_CLUSTER_NODES', clusterNodes) }
  if (sentinels !== undefined) {
    const parsed = parseRedisNodes('REDIS_SENTINELS', sentinels)
    const name = read.raw('REDIS_SENTINEL_NAME')
    if (name === undefined) throw new ConfigError('REDIS_SENTINEL_NAME', 'must name the master the Sentinels watch (their `sentinel monitor <name>`) when REDIS_SENTINELS is set')
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new ConfigError('REDIS_SENTINEL_NAME', 'must be 1 to 64 letters, digits, ".", "_" or "-"')
    const sentinelPassword = read.raw('REDIS_SENTINEL_PASSWORD')
    return { mode: 'sentinel', sentinels: parsed.nodes, name, ...(sentinelPassword !== undefined ? { sentinelPassword } : {}), ...withoutNodes(parsed) }
  }
  return { mode: 'standalone', url: read.url('REDIS_URL', fallbackUrl, ['redis:', 'rediss:']) }
}

function withoutNodes ({ nodes: _, ...auth }: { nodes: RedisNode[] } & RedisAuth): RedisAuth {
  return auth
}

/** Where the target is, for log lines and error messages: never a password. */
export function describeRedisTarget (target: RedisTarget): string {
  const list = (nodes: RedisNode[]): string => nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',')
  switch (target.mode) {
    case 'standalone': {
      const url = new URL(target.url)
      return url.host
    }
    case 'cluster': return `cluster ${list(target.nodes)}`
    case 'sentinel': return `sentinel master ${target.name} via ${list(target.sentinels)}`
  }
}

// Reconnect quickly at first, then once a second, forever: the service must
// come back by itself however long Redis was away.
const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** attempt, 1000)

/**
 * Builds the one kind of Redis client Baton uses, set to fail fast: no
 * offline queue, no silent resends, a command timeout, and a reconnect loop
 * that never gives up. A caller whose command meets Redis down (or a cluster
 * mid-failover) gets an error within about `commandTimeoutMs`, and the
 * client recovers by itself once Redis (or a promoted replica) answers.
 *
 * @example
 * const redis = createRedisClient(readRedisTarget(envReader(process.env)), { commandTimeoutMs: 1000 })
 * await redis.connect()
 */
export function createRedisClient (target: RedisTarget | string, options: RedisClientOptions): RedisClient {
  const resolved: RedisTarget = typeof target === 'string' ? { mode: 'standalone', url: target } : target
  const timeout = options.commandTimeoutMs
  const perConnection = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: timeout,
    connectTimeout: Math.max(timeout, 1000)
  } satisfies RedisOptions
  const lazyConnect = options.lazyConnect ?? true
  const enableAutoPipelining = options.autoPipelining ?? false
  const auth = (value: RedisAuth): RedisOptions => ({
    ...(value.username !== undefined ? { username: value.username } : {}),
    ...(value.password !== undefined ? { password: value.password } : {}),
    ...(value.tls ? { tls: {} } : {})
  })

  switch (resolved.mode) {
    case 'standalone':
      return new Redis(resolved.url, { ...perConnection, lazyConnect, enableAutoPipelining, retryStrategy: reconnectDelay })
    case 'sentinel':
      return new Redis({
        ...perConnection,
        ...auth(resolved),
        lazyConnect,
        enableAutoPipelining,
        sentinels: resolved.sentinels,
        name: resolved.name,
        role: 'master',
        ...(resolved.sentinelPassword !== undefined ? { sentinelPassword: resolved.sentinelPassword } : {}),
        ...(resolved.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
        sentinelCommandTimeout: timeout,
        // Ask the Sentinels again, forever, once every one of them failed to name a master.
        sentinelRetryStrategy: reconnectDelay,
        // Each reconnect asks the Sentinels for the master, so a promotion is found
        // by the reconnect loop. (ioredis' failoverDetector would notice sooner,
        // but its Sentinel subscriptions outlive quit() and keep the process alive.)
        retryStrategy: reconnectDelay
      })
    case 'cluster': {
      const clusterOptions: ClusterOptions = {
        lazyConnect,
        enableOfflineQueue: false,
        // Writes only: a replica may lag behind a rotation it has not seen yet.
        scaleReads: 'master',
        redisOptions: { ...auth(resolved), ...perConnection },
        maxRedirections: 16,
        // No delayed resends: a command still queued when its caller timed
        // out (503) would run later, after the client moved on, and a spent
        // refresh token arriving late reads as theft. A redirect (MOVED/ASK)
        // is still followed at once; a dead master's slot fails fast until
        // the slot map names its promoted replica.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        slotsRefreshTimeout: Math.max(timeout, 1000),
        // Notice a promoted replica even when no command is redirected.
        slotsRefreshInterval: 2000,
        clusterRetryStrategy: reconnectDelay
      }
      // With TLS, connect by name rather than a resolved address, so the certificate is checked against the name.
      if (resolved.tls) clusterOptions.dnsLookup = (address, callback) => { callback(null, address) }
      return new Cluster(resolved.nodes, clusterOptions)
    }
  }
}

/** Whether a client is a Cluster client (ioredis marks it so). */
export function isClusterClient (client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true
}
