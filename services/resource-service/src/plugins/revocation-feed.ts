import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { RedisClient } from '@baton/service-kit'
import { Counter, Gauge, Histogram } from 'prom-client'
import { decodeRevocationEvent } from '@baton/tokens'
import type { RevocationList } from '../revocation-list.js'

export interface RevocationFeedOptions {
  /** A dedicated connection (it blocks); see createFeedRedisClient. */
  client: RedisClient
  /** Close the client with the app (false: the caller's). */
  ownsClient: boolean
  /** `<prefix>revocations` */
  stream: string
  list: RevocationList
  now: () => number
  /** How long one XREAD blocks (ms); the client's command timeout must be longer. */
  blockMs: number
  /** How often entries that no longer matter are dropped (ms); default 5 s. */
  sweepIntervalMs?: number
}

type StreamEntry = [id: string, fields: string[]]
type XReadReply = Array<[stream: string, entries: StreamEntry[]]> | null

const BATCH = 1000

/** Orders stream ids (`<ms>-<seq>`). */
export function compareStreamIds (a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split('-').map((part) => BigInt(part))
  const [bMs = 0n, bSeq = 0n] = b.split('-').map((part) => BigInt(part))
  return aMs === bMs ? Number(aSeq - bSeq) : aMs < bMs ? -1 : 1
}

/**
 * Follows the auth-service's revocation stream into `list`. On start it reads
 * everything the stream still holds (it is trimmed to the longest token
 * lifetime, and each event says when it stops mattering); then it blocks on
 * XREAD from the last id seen. After a reconnect it first checks the stream
 * is the one it was reading (a Redis that lost its data starts over) and
 * reads what it missed; an entry whose `prev` is not the last id seen means
 * entries were trimmed or lost before they were read: a gap, logged and
 * counted. Requests never wait on any of this.
 */
export const revocationFeedPlugin = fp(async function revocationFeed (app: FastifyInstance, opts: RevocationFeedOptions) {
  const { client, stream, list, now } = opts
  const registers = [app.metrics]
  const lag = new Histogram({
    name: 'baton_resource_revocation_feed_lag_seconds',
    help: 'Time from a revocation at the auth-service to this verifier applying it (catch-up after an outage included)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'baton_resource_revocation_feed_entries',
    help: 'Revoked sessions, access tokens and signing keys held in memory, by kind',
    labelNames: ['kind'] as const,
    registers,
    collect () {
      list.sweep(now())
      this.set({ kind: 'session' }, list.sessions)
      this.set({ kind: 'token' }, list.tokens)
      this.set({ kind: 'key' }, list.keys)
    }
  })
  const connected = new Gauge({
    name: 'baton_resource_revocation_feed_connected',
    help: '1 while the revocation feed is connected and caught up, else 0',
    registers
  })
  const gaps = new Counter({
    name: 'baton_resource_revocation_feed_gaps_total',
    help: 'Times revocation feed entries were lost before this verifier read them, by reason',
    labelNames: ['reason'] as const,
    registers
  })

  let lastId = '0-0'
  /** The `prev` the next entry should carry; undefined while nothing before it is known. */
  let expectPrev: string | undefined
  let caughtUp = false
  let closed = false
  // Bumped on every (re)connect: the loop catches up again whenever it moved.
  let epoch = 0
  let syncedEpoch = -1
  let lastErrorLog = 0

  client.on('ready', () => { epoch += 1 })
  client.on('close', () => { connected.set(0) })
  client.on('error', (error: Error) => { logFailure(error) })

  function logFailure (error: Error): void {
    if (closed || Date.now() - lastErrorLog < 10_000) return
    lastErrorLog = Date.now()
    app.log.warn({ err: { message: error.message }, caughtUp, lastId }, 'revocation feed unavailable; revocations known so far still apply')
  }

  function gap (reason: 'stream_lost' | 'stream_reset' | 'entries_missed', detail: Record<string, unknown>): void {
    gaps.inc({ reason })
    app.log.warn({ reason, ...detail }, 'revocation feed gap: revocations may have been missed; they are honoured when the tokens expire')
  }

  function apply (reply: XReadReply): number {
    const entries = reply?.[0]?.[1] ?? []
    const nowMs = now()
    for (const [id, fields] of entries) {
      const prevAt = fields.indexOf('prev')
      const prev = prevAt >= 0 && prevAt % 2 === 0 ? fields[prevAt + 1] : undefined
      if (expectPrev !== undefined && prev !== undefined && prev !== expectPrev) gap('entries_missed', { expected: expectPrev, prev, id })
      expectPrev = id
      lastId = id
      const event = decodeRevocationEvent(fields)
      if (event === undefined) {
        app.log.warn({ id }, 'revocation feed: skipped an entry that is not a revocation event')
        continue
      }
      list.apply(event, nowMs)
      lag.observe(Math.max(0, nowMs - event.at) / 1000)
    }
    return entries.length
  }

  /** After a (re)connect: make sure lastId still means something, then read all that is new. */
  async function catchUp (): Promise<void> {
    const epochAtStart = epoch
    if (lastId !== '0-0') {
      const last = await lastGeneratedId()
      if (last === undefined) {
        gap('stream_lost', { lastId })
        lastId = '0-0'
        expectPrev = undefined
      } else if (compareStreamIds(last, lastId) < 0) {
        gap('stream_reset', { lastId, last })
        lastId = '0-0'
        expectPrev = undefined
      }
    }
    while (apply(await client.call('XREAD', 'COUNT', BATCH, 'STREAMS', stream, lastId) as XReadReply) === BATCH);
    syncedEpoch = epochAtStart
    if (!caughtUp) app.log.info({ lastId, sessions: list.sessions, tokens: list.tokens }, 'revocation feed caught up')
    caughtUp = true
    connected.set(1)
  }

  async function lastGeneratedId (): Promise<string | undefined> {
    try {
      const info = await client.call('XINFO', 'STREAM', stream) as unknown[]
      const at = info.indexOf('last-generated-id')
      return at >= 0 ? String(info[at + 1]) : undefined
    } catch (error) {
      if (/no such key/i.test((error as Error).message)) return undefined
      throw error
    }
  }

  async function untilReady (): Promise<void> {
    if (client.status === 'wait') client.connect().catch(() => {})
    if (client.status === 'ready') return
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); client.off('ready', done); resolve() }
      const timer = setTimeout(done, 1000)
      client.once('ready', done)
    })
  }

  async function follow (): Promise<void> {
    while (!closed) {
      try {
        await untilReady()
        if (closed) break
        if (client.status !== 'ready') continue
        if (syncedEpoch !== epoch) await catchUp()
        apply(await client.call('XREAD', 'COUNT', BATCH, 'BLOCK', opts.blockMs, 'STREAMS', stream, lastId) as XReadReply)
      } catch (error) {
        if (closed) break
        connected.set(0)
        // A timeout leaves the connection up: catch up on it as after a reconnect.
        syncedEpoch = -1
        logFailure(error as Error)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }

  let following: Promise<void> | undefined
  const sweeper = setInterval(() => { list.sweep(now()) }, opts.sweepIntervalMs ?? 5000)
  sweeper.unref()
  connected.set(0)

  app.addReadinessCheck('revocation_feed', () => caughtUp ? undefined : 'the revocation feed has not caught up yet')
  app.addHook('onReady', async () => { following = follow() })
  app.addHook('onClose', async () => {
    closed = true
    clearInterval(sweeper)
    // Disconnecting ends the blocked XREAD at once.
    if (opts.ownsClient) client.disconnect()
    await following
  })
}, { name: 'baton-revocation-feed', fastify: '5.x', dependencies: ['baton-health', 'baton-metrics'] })
