import t from 'tap'
import { Redis } from 'ioredis'
import { RedisClock } from '../src/redis-clock.js'
import { sharedRedis } from './helper.js'

t.test('the deadline is in Redis\'s own time: the command timeout from now, less a margin', async (t) => {
  const server = await sharedRedis()
  const client = new Redis(server.url, { commandTimeout: 1000 })
  t.teardown(() => { client.disconnect() })
  const clock = new RedisClock(1000)
  t.equal(clock.deadline(), 0, 'no limit until measured')
  await clock.sample(client)
  const [seconds, micros] = await client.time()
  const redisNow = Number(seconds) * 1000 + Number(micros) / 1000
  const expected = redisNow + 1000 - 200
  t.ok(Math.abs(clock.deadline() - expected) < 100, `deadline ${clock.deadline() - redisNow} ms after Redis's now, expected about 800`)
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
