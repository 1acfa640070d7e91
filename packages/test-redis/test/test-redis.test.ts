import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { freePort, redisCommand, startRedis, startRedisCluster } from '../src/index.js'

t.test('a private server: SET/GET, pause, crash and restart, stop', async (t) => {
  const server = await startRedis({ appendonly: true })
  t.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  t.not(server.port, 6379, 'never the default port')

  const client = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await client.set('greeting', 'hello')
  t.equal(await client.get('greeting'), 'hello')

  server.pause()
  await t.rejects(redisCommand(server.port, ['PING'], server.host, 300), 'a paused server answers nothing')
  server.resume()
  t.equal(await redisCommand(server.port, ['PING']), 'PONG')

  const before = server.pid
  await client.call('CONFIG', 'SET', 'appendfsync', 'always')
  await client.set('durable', 'yes')
  server.kill()
  await server.restart()
  t.not(server.pid, before, 'a new process')
  t.equal(await client.get('durable'), 'yes', 'the append-only file survived the crash')

  await server.stop()
  await t.rejects(redisCommand(server.port, ['PING'], server.host, 300), 'the port no longer answers')
})

t.test('freePort gives a bindable port', async (t) => {
  const port = await freePort()
  t.ok(port > 0 && port < 65536 && port !== 6379, `port ${port}`)
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject).listen(port, '127.0.0.1', resolve) })
  t.equal((server.address() as AddressInfo).port, port, 'a server listens on it')
  await new Promise((resolve) => server.close(resolve))
})

t.test('a missing redis-server is reported with how to install it', async (t) => {
  const path = process.env.PATH
  process.env.PATH = '/nonexistent'
  t.teardown(() => { process.env.PATH = path })
  await t.rejects(startRedis(), /redis-server is not on the PATH.*apt-get install redis-server/)
})

t.test('a cluster: keys in different slots land on different masters', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(async () => { await cluster.stop() })
  t.equal(cluster.nodes.length, 6)
  t.equal(cluster.seeds.split(',').length, 6)

  const client = new Redis.Cluster(cluster.nodes)
  t.teardown(() => { client.disconnect() })
  const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`)
  for (const key of keys) await client.set(key, `value of ${key}`)
  t.same(await Promise.all(keys.map(async (key) => await client.get(key))), keys.map((key) => `value of ${key}`))

  const slots = await client.cluster('SLOTS')
  const masters = new Set<number>()
  for (const key of keys) {
    const slot = await client.cluster('KEYSLOT', key)
    const range = slots.find(([from, to]) => slot >= from && slot <= to)
    if (range?.[2] !== undefined) masters.add(range[2][1])
  }
  t.equal(masters.size, 3, 'all three masters hold some of the keys')
})
