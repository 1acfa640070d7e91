import { EventEmitter } from 'node:events'
import { decodeRevocationEvent, parseDuration, revocationStreamKey, type AccessTokenClaims, type RevocationEvent } from '@baton/tokens'
import type { Logger } from '../logger.js'
import { RevocationList } from './revocation-list.js'

/**
 * The Redis connection the feed reads through: an ioredis `Redis` (one
 * server, or a Sentinel-managed master) or `Cluster`. It serves a blocking
 * XREAD, so it must be a connection of its own.
 */
export interface FeedClient {
  status: string
  call: (command: string, ...args: Array<string | number>) => Promise<unknown>
  connect: () => Promise<unknown>
  disconnect: () => void
  on: (event: 'ready' | 'close' | 'error', listener: (error: Error) => void) => unknown
  once: (event: 'ready', listener: () => void) => unknown
  off: (event: 'ready', listener: () => void) => unknown
  /** ioredis's options, read for `commandTimeout` (a Cluster's `redisOptions.commandTimeout`). */
  options?: { commandTimeout?: number, redisOptions?: { commandTimeout?: number } }
}

export interface RevocationFeedOptions {
  client: FeedClient
  /** The auth-service's `REDIS_KEY_PREFIX`; default `baton:`. */
  keyPrefix?: string
  /** This verifier's own clock skew (seconds or a duration): entries are kept that much past the issuer's `until`. Default 5 seconds. */
  clockSkew?: number | string
  /** How long one XREAD waits for news (ms); the client's command timeout, if any, must be longer. Default 2000. */
  blockMs?: number
  /** How often entries that no longer matter are dropped (ms); default 5000. */
  sweepIntervalMs?: number
  /** Close the client with the feed; default false (the caller's client stays the caller's). */
  ownsClient?: boolean
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  now?: () => number
  log?: Logger
}

/** Why entries may have been missed: trimmed before they were read, the stream gone, or replaced by an older one. */
export type GapReason = 'entries_missed' | 'stream_lost' | 'stream_reset'

type StreamEntry = [id: string, fields: string[]]
type XReadReply = Array<[stream: string, entries: StreamEntry[]]> | null

const BATCH = 1000
const DEFAULT_BLOCK_MS = 2000

/** Orders stream ids (`<ms>-<seq>`). */
export function compareStreamIds (a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split('-').map((part) => BigInt(part))
  const [bMs = 0n, bSeq = 0n] = b.split('-').map((part) => BigInt(part))
  return aMs === bMs ? Number(aSeq - bSeq) : aMs < bMs ? -1 : 1
}

function commandTimeoutOf (client: FeedClient): number | undefined {
  return client.options?.commandTimeout ?? client.options?.redisOptions?.commandTimeout
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- types the events RevocationFeed emits onto the on() it inherits from EventEmitter
export interface RevocationFeed {
  on: ((event: 'applied', listener: (event: RevocationEvent, lagMs: number) => void) => this) &
    ((event: 'gap', listener: (reason: GapReason, detail: Record<string, unknown>) => void) => this)
}

/**
 * Follows the auth-service's revocation feed (a Redis stream) so that a
 * stateless verifier refuses revoked sessions and tokens within
 * milliseconds; pass `feed.isRevoked` to the verifier. Requests never wait on
 * Redis: `isRevoked` is one or two Map lookups, and while Redis is away the
 * revocations known so far still apply.
 *
 * On start it reads everything the stream still holds (it is trimmed to the
 * longest token lifetime, and each event says when it stops mattering), then
 * blocks on XREAD from the last id seen. After a reconnect it first checks the
 * stream is the one it was reading (a Redis that lost its data starts over)
 * and reads what it missed; an entry whose `prev` is not the last id seen
 * means entries were trimmed or lost before they were read. Emits `applied`
 * (event, lag in ms) and `gap` (reason, details).
 *
 * @example
 * const feed = new RevocationFeed({ client: new Redis(url, { lazyConnect: true, commandTimeout: 5000 }), ownsClient: true })
 * feed.start()
 * const verifier = createVerifier({ issuer, audience, jwksUri, isRevoked: feed.isRevoked })
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- types the events RevocationFeed emits onto the on() it inherits from EventEmitter
export class RevocationFeed extends EventEmitter {
  /** What the feed said, held while it matters. */
  readonly list: RevocationList
  readonly #client: FeedClient
  readonly #stream: string
  readonly #blockMs: number
  readonly #sweepIntervalMs: number
  readonly #ownsClient: boolean
  readonly #now: () => number
  readonly #log: Logger | undefined

  #lastId = '0-0'
  /** The `prev` the next entry should carry; undefined while nothing before it is known. */
  #expectPrev: string | undefined
  #caughtUp = false
  #connected = false
  #closed = false
  // Bumped on every (re)connect: the loop catches up again whenever it moved.
  #epoch = 0
  #syncedEpoch = -1
  #lastErrorLog = 0
  #following: Promise<void> | undefined
  #sweeper: NodeJS.Timeout | undefined
  readonly #firstCatchUp: Promise<void>
  #resolveFirstCatchUp: () => void = () => {}

  constructor (options: RevocationFeedOptions) {
    super()
    const fail = (path: string, expectation: string): never => { throw new Error(`RevocationFeed: options.${path} ${expectation}`) }
    const { client } = options
    if (typeof client?.call !== 'function' || typeof client.on !== 'function') fail('client', 'must be an ioredis client')
    const blockMs = options.blockMs ?? DEFAULT_BLOCK_MS
    if (!Number.isSafeInteger(blockMs) || blockMs < 1) fail('blockMs', 'must be a whole number of milliseconds ≥ 1')
    const timeout = commandTimeoutOf(client)
    if (timeout !== undefined && timeout <= blockMs) fail('client', `has a command timeout (${timeout} ms) that a blocking read of ${blockMs} ms would always hit; make it longer than blockMs`)
    const skew = options.clockSkew ?? 5
    const skewSeconds = typeof skew === 'string' ? parseDuration(skew) : (Number.isFinite(skew) && skew >= 0 ? skew : undefined)
    if (skewSeconds === undefined) fail('clockSkew', 'must be seconds ≥ 0 or a duration such as "5s"')
    this.#client = client
    this.#stream = revocationStreamKey(options.keyPrefix ?? 'baton:')
    this.#blockMs = blockMs
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 5000
    this.#ownsClient = options.ownsClient ?? false
    this.#now = options.now ?? Date.now
    this.#log = options.log
    this.list = new RevocationList(skewSeconds! * 1000)
    this.#firstCatchUp = new Promise((resolve) => { this.#resolveFirstCatchUp = resolve })
    client.on('ready', () => { this.#epoch += 1 })
    client.on('close', () => { this.#connected = false })
    client.on('error', (error) => { this.#logFailure(error) })
  }

  /** Whether these claims name a revoked session or token. For the verifier's `isRevoked`. */
  readonly isRevoked = (claims: Pick<AccessTokenClaims, 'sub' | 'jti' | 'sid'>): boolean => this.list.isRevoked(claims)

  /** True once the feed has read the whole stream at least once: before that, revocations may be unknown. */
  get caughtUp (): boolean { return this.#caughtUp }

  /** True while connected and caught up. */
  get connected (): boolean { return this.#connected }

  /** Forgets the entries that no longer matter now; the feed also does this every `sweepIntervalMs`. */
  sweep (): void { this.list.sweep(this.#now()) }

  /** Resolves once the feed has caught up for the first time. */
  async whenCaughtUp (): Promise<void> { await this.#firstCatchUp }

  /** Starts following the stream; returns at once. */
  start (): void {
    if (this.#following !== undefined || this.#closed) return
    this.#sweeper = setInterval(() => { this.sweep() }, this.#sweepIntervalMs)
    this.#sweeper.unref()
    this.#following = this.#follow()
  }

  /** Stops following; disconnects the client if the feed owns it (which also ends a blocked read at once). */
  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#sweeper)
    if (this.#ownsClient) this.#client.disconnect()
    await this.#following
  }

  #logFailure (error: Error): void {
    if (this.#closed || Date.now() - this.#lastErrorLog < 10_000) return
    this.#lastErrorLog = Date.now()
    this.#log?.warn({ err: { message: error.message }, caughtUp: this.#caughtUp, lastId: this.#lastId }, 'revocation feed unavailable; revocations known so far still apply')
  }

  #gap (reason: GapReason, detail: Record<string, unknown>): void {
    this.#log?.warn({ reason, ...detail }, 'revocation feed gap: revocations may have been missed; they are honoured when the tokens expire')
    this.emit('gap', reason, detail)
  }

  #apply (reply: XReadReply): number {
    const entries = reply?.[0]?.[1] ?? []
    const nowMs = this.#now()
    for (const [id, fields] of entries) {
      const prevAt = fields.indexOf('prev')
      const prev = prevAt >= 0 && prevAt % 2 === 0 ? fields[prevAt + 1] : undefined
      if (this.#expectPrev !== undefined && prev !== undefined && prev !== this.#expectPrev) this.#gap('entries_missed', { expected: this.#expectPrev, prev, id })
      this.#expectPrev = id
      this.#lastId = id
      const event = decodeRevocationEvent(fields)
      if (event === undefined) {
        this.#log?.warn({ id }, 'revocation feed: skipped an entry that is not a revocation event')
        continue
      }
      this.list.apply(event, nowMs)
      this.emit('applied', event, Math.max(0, nowMs - event.at))
    }
    return entries.length
  }

  /** After a (re)connect: make sure lastId still means something, then read all that is new. */
  async #catchUp (): Promise<void> {
    const epochAtStart = this.#epoch
    if (this.#lastId !== '0-0') {
      const last = await this.#lastGeneratedId()
      if (last === undefined || compareStreamIds(last, this.#lastId) < 0) {
        this.#gap(last === undefined ? 'stream_lost' : 'stream_reset', { lastId: this.#lastId, last })
        this.#lastId = '0-0'
        this.#expectPrev = undefined
      }
    }
    while (this.#apply(await this.#client.call('XREAD', 'COUNT', BATCH, 'STREAMS', this.#stream, this.#lastId) as XReadReply) === BATCH);
    this.#syncedEpoch = epochAtStart
    if (!this.#caughtUp) this.#log?.info({ lastId: this.#lastId, sessions: this.list.sessions, tokens: this.list.tokens }, 'revocation feed caught up')
    this.#caughtUp = true
    this.#connected = true
    this.#resolveFirstCatchUp()
  }

  async #lastGeneratedId (): Promise<string | undefined> {
    try {
      const info = await this.#client.call('XINFO', 'STREAM', this.#stream) as unknown[]
      const at = info.indexOf('last-generated-id')
      return at >= 0 ? String(info[at + 1]) : undefined
    } catch (error) {
      if (/no such key/i.test((error as Error).message)) return undefined
      throw error
    }
  }

  async #untilReady (): Promise<void> {
    const client = this.#client
    if (client.status === 'wait') client.connect().catch(() => {})
    if (client.status === 'ready') return
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); client.off('ready', done); resolve() }
      const timer = setTimeout(done, 1000)
      client.once('ready', done)
    })
  }

  async #follow (): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#untilReady()
        if (this.#closed) break
        if (this.#client.status !== 'ready') continue
        if (this.#syncedEpoch !== this.#epoch) await this.#catchUp()
        this.#apply(await this.#client.call('XREAD', 'COUNT', BATCH, 'BLOCK', this.#blockMs, 'STREAMS', this.#stream, this.#lastId) as XReadReply)
      } catch (error) {
        if (this.#closed) break
        this.#connected = false
        // A timeout leaves the connection up: catch up on it as after a reconnect.
        this.#syncedEpoch = -1
        this.#logFailure(error as Error)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }
}
