import t from 'tap'
import { Redis } from 'ioredis'
import { RedisClock } from '../src/redis/clock.js'
import { sharedRedis } from './helper.js'

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
  const [seconds, micros] = await client.time()
  const redisNow = Number(seconds) * 1000 + Number(micros) / 1000
  const expected = redisNow + 1000 - 200
  t.ok(Math.abs(clock.deadline() - expected) < 100, `deadline ${clock.deadline() - redisNow} ms after Redis's now, expected about 800`)
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
  await clock.sample(client)
  const before = clock.deadline()
  server.pause()
  t.teardown(() => { server.resume() })
  await t.rejects(clock.sample(client), 'the paused server does not answer')
  server.resume()
  const after = clock.deadline()
  t.ok(after - before >= 150 && after - before < 1000, `the deadline moved with time only (${after - before} ms)`)
})
