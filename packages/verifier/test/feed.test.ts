// The revocation-feed follower on its own, against a private Redis: the
// stream is written here as the auth-service writes it (each entry naming
// its predecessor in `prev`), so every state the follower can meet is at hand.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { startRedis, type TestRedis } from '@baton/test-redis'
import { encodeRevocationEvent, revocationStreamKey, type RevocationEvent } from '@baton/tokens'
import { RevocationFeed, type GapReason, type RevocationFeedOptions } from '../src/feed/index.js'
import { waitFor } from './helper.js'

const STREAM = revocationStreamKey('feedtest:')

interface Rig {
  redis: TestRedis
  admin: Redis
  /** Appends an event with `prev` set as the auth-service sets it (or as given); returns the entry id. */
  publish: (event: RevocationEvent, prev?: string) => Promise<string>
  /** A follower on its own connection; closed with the test. */
  follow: (options?: Partial<RevocationFeedOptions>) => { feed: RevocationFeed, client: Redis, gaps: GapReason[] }
}

async function rig (t: Test): Promise<Rig> {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  return {
    redis,
    admin,
    publish: async (event, prev) => {
      let last = prev
      if (last === undefined) {
        const info = await admin.call('XINFO', 'STREAM', STREAM).catch(() => undefined) as unknown[] | undefined
        last = info === undefined ? '0-0' : String(info[info.indexOf('last-generated-id') + 1])
      }
      return await admin.xadd(STREAM, '*', 'prev', last, ...encodeRevocationEvent(event)) as string
    },
    follow: (options = {}) => {
      const client = new Redis(redis.url, { lazyConnect: true, commandTimeout: 3000, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
      const feed = new RevocationFeed({ client, ownsClient: true, keyPrefix: 'feedtest:', blockMs: 1000, ...options })
      const gaps: GapReason[] = []
      feed.on('gap', (reason) => { gaps.push(reason) })
      t.teardown(async () => { await feed.close() })
      return { feed, client, gaps }
    }
  }
}

const later = (): number => Date.now() + 600_000
const session = (sub: string, sid: string): RevocationEvent => ({ kind: 'sessions', sub, sids: [sid], at: Date.now(), until: later() })
const token = (sub: string, jti: string): RevocationEvent => ({ kind: 'token', sub, jti, at: Date.now(), until: later() })
const claims = (sub: string, sid: string, jti = 'jti-x'): { sub: string, sid: string, jti: string } => ({ sub, sid, jti })

t.test('catches up on what the stream holds, then applies each new entry as it comes', async (t) => {
  const { publish, follow } = await rig(t)
  await publish(session('ada', 'sid-before'))
  const { feed } = follow()
  const applied: RevocationEvent[] = []
  feed.on('applied', (event) => { applied.push(event) })
  t.equal(feed.caughtUp, false)
  feed.start()
  await feed.whenCaughtUp()
  t.ok(feed.caughtUp && feed.connected)
  t.ok(feed.isRevoked(claims('ada', 'sid-before')), 'a session revoked before the follower started')
  t.notOk(feed.isRevoked(claims('bob', 'sid-before')), 'the same sid under another subject is not that session')

  await publish(token('ada', 'jti-now'))
  await waitFor(() => feed.isRevoked(claims('ada', 'sid-other', 'jti-now')))
  t.same(applied.map((event) => event.kind), ['sessions', 'token'])
  t.equal(feed.list.sessions, 1)
  t.equal(feed.list.tokens, 1)
})

t.test('an entry that is not an event is skipped; the ones after it still apply', async (t) => {
  const { admin, publish, follow } = await rig(t)
  const warnings: string[] = []
  const { feed, gaps } = follow({ log: { info: () => {}, error: () => {}, warn: (_details, message) => { warnings.push(message) } } })
  feed.start()
  await feed.whenCaughtUp()
  const odd = await admin.xadd(STREAM, '*', 'prev', '0-0', 'kind', 'something-newer') as string
  await publish(session('ada', 'sid-1'), odd)
  await waitFor(() => feed.isRevoked(claims('ada', 'sid-1')))
  t.same(warnings, ['revocation feed: skipped an entry that is not a revocation event'])
  t.same(gaps, [])
})

t.test('an entry whose prev is not the last one read is a gap, and still applies', async (t) => {
  const { publish, follow } = await rig(t)
  const { feed, gaps } = follow()
  feed.start()
  await feed.whenCaughtUp()
  await publish(session('ada', 'sid-1'))
  await publish(session('ada', 'sid-2'), '1-1')
  await waitFor(() => feed.isRevoked(claims('ada', 'sid-2')))
  t.same(gaps, ['entries_missed'])
})

t.test('a stream gone while disconnected is a gap; the follower starts over on the new one', async (t) => {
  const { admin, publish, follow } = await rig(t)
  await publish(session('ada', 'sid-1'))
  const { feed, client, gaps } = follow()
  feed.start()
  await feed.whenCaughtUp()
  client.disconnect()
  await waitFor(() => !feed.connected)
  await admin.del(STREAM)
  await client.connect()
  await waitFor(() => gaps.length > 0 && feed.connected)
  t.same(gaps, ['stream_lost'])
  await publish(session('ada', 'sid-2'))
  await waitFor(() => feed.isRevoked(claims('ada', 'sid-2')))
  t.pass('the new stream\'s entries apply')
  t.ok(feed.isRevoked(claims('ada', 'sid-1')), 'what was known before still applies')
})

t.test('Redis away: isRevoked keeps answering from memory; after it comes back the feed catches up', async (t) => {
  const { redis, publish, follow } = await rig(t)
  await publish(session('ada', 'sid-1'))
  const { feed } = follow()
  feed.start()
  await feed.whenCaughtUp()
  redis.pause()
  await waitFor(() => !feed.connected, 10_000)
  t.ok(feed.isRevoked(claims('ada', 'sid-1')), 'known while Redis does not answer')
  redis.resume()
  await waitFor(() => feed.connected, 10_000)
  await publish(session('ada', 'sid-2'))
  await waitFor(() => feed.isRevoked(claims('ada', 'sid-2')))
  t.pass('caught up and following again')
})

t.test('close() ends a blocked read at once; a client the caller owns stays open', async (t) => {
  const { redis, follow } = await rig(t)
  t.throws(() => follow({ blockMs: 5000 }), /command timeout \(3000 ms\)/, 'a command timeout the blocking read would hit is refused')
  const feed = new RevocationFeed({ client: new Redis(redis.url, { lazyConnect: true }), ownsClient: true, keyPrefix: 'feedtest:', blockMs: 60_000 })
  feed.start()
  await feed.whenCaughtUp()
  const started = Date.now()
  await feed.close()
  t.ok(Date.now() - started < 5000, 'closed without waiting out the BLOCK time')
  const shared = new Redis(redis.url)
  t.teardown(() => { shared.disconnect() })
  const notOwned = new RevocationFeed({ client: shared, keyPrefix: 'feedtest:', blockMs: 100 })
  notOwned.start()
  await notOwned.whenCaughtUp()
  await notOwned.close()
  t.equal(await shared.ping(), 'PONG', 'the caller\'s client still works')
})

t.test('bad options throw at once, naming the option', async (t) => {
  const client = new Redis({ lazyConnect: true })
  t.throws(() => new RevocationFeed({ client, clockSkew: 'soon' }), /options\.clockSkew/)
  t.throws(() => new RevocationFeed({ client, blockMs: 0 }), /options\.blockMs/)
  t.throws(() => new RevocationFeed({ client: {} as Redis }), /options\.client/)
})
