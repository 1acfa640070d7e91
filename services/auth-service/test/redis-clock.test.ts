import t from 'tap'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { RedisClock } from '../src/redis/clock.js'
import { sharedRedis } from './helper.js'

// The clock's own time base (src/redis-clock.ts).
const local = (): number => performance.timeOrigin + performance.now()

// A busy machine's slow round trip (the first one connects, too) is too coarse to keep: sample until one is kept.
async function measured (clock: RedisClock, client: Redis): Promise<void> {
  for (let attempt = 0; attempt < 20 && clock.deadline() === 0; attempt++) await clock.sample(client)
}

t.test('the deadline is in Redis\'s own time: the command timeout from now, less a margin', async (t) => {
  const server = await sharedRedis()
  const client = new Redis(server.url, { commandTimeout: 5000 })
  t.teardown(() => { client.disconnect() })
  const clock = new RedisClock(1000)
  t.equal(clock.deadline(), 0, 'no limit until measured')
  await measured(clock, client)
  const sent = local()
  const [seconds, micros] = await client.time()
  const received = local()
  const deadline = clock.deadline()
  const redisNow = Number(seconds) * 1000 + Number(micros) / 1000
  // Redis's now was somewhere in [sent, received] of ours, and the deadline was taken just
  // after: without the clock's error it lies in [800 ms, 800 ms + that round trip] after
  // Redis's now. The clock keeps samples under a quarter of the timeout, so it errs by at
  // most half of 250 ms: tolerance enough on a loaded machine, and less than the 200 ms margin.
  const after = deadline - redisNow
  const tolerance = 125 + 1
  t.ok(after >= 800 - tolerance && after <= 800 + (received - sent) + tolerance,
    `deadline ${after.toFixed(0)} ms after Redis's now, expected 800 (this round trip ${(received - sent).toFixed(0)} ms)`)
})

t.test('a caller that waits less (what is left of its request\'s budget) gets an earlier deadline', async (t) => {
  const server = await sharedRedis()
  const client = new Redis(server.url, { commandTimeout: 5000 })
  t.teardown(() => { client.disconnect() })
  const clock = new RedisClock(1000)
  await measured(clock, client)
  const full = clock.deadline()
  const left = clock.deadline(300)
  t.ok(Math.abs(full - left - 700) < 50, `${full - left} ms earlier, expected about 700`)
  t.equal(clock.marginMs, 200, 'both leave the reply the same margin to come back in')
})

t.test('a sample that cannot be had keeps the offset measured before', async (t) => {
  const server = await sharedRedis()
  const client = new Redis(server.url, { commandTimeout: 200, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const clock = new RedisClock(1000)
  await measured(clock, client)
  const before = clock.deadline()
  const beforeAt = local()
  server.pause()
  t.teardown(() => { server.resume() })
  await t.rejects(clock.sample(client), 'the paused server does not answer')
  server.resume()
  const after = clock.deadline()
  const elapsed = local() - beforeAt
  t.ok(Math.abs(after - before - elapsed) <= 2, `the deadline moved with time only: ${after - before} ms in ${elapsed.toFixed(0)} ms`)
})
