import t from 'tap'
import { startRedisSentinel } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { register, login, refresh, untilReady, type Tokens } from './helper.js'

// The auth-service finds its master through Sentinel, and follows it when
// the Sentinel promotes the replica: fast 503s meanwhile, no restart.
t.test('through Redis Sentinel: the lifecycle, then a failover', async (t) => {
  // Two replicas: once one is promoted, the Sentinel points the other at it, and WAIT has a replica to count.
  const sentinel = await startRedisSentinel({ replicas: 2 })
  t.teardown(async () => { await sentinel.stop() })
  const app = await buildApp(loadConfig({
    REDIS_SENTINELS: sentinel.sentinels.map(({ host, port }) => `${host}:${port}`).join(','),
    REDIS_SENTINEL_NAME: sentinel.name,
    // The master is killed outright: only what a replica acknowledged may be handed out.
    REDIS_WAIT_REPLICAS: '1',
    LOG_LEVEL: 'silent'
  }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  await untilReady(app)

  const user = await register(app, 'sentinel')
  let tokens = await login(app, user.username, user.password)
  const rotated = await refresh(app, tokens.refresh_token)
  t.equal(rotated.statusCode, 200, 'a refresh through the Sentinel-named master')
  tokens = rotated.json<Tokens>()
  // A session left alone through the failover: its token was handed out (and WAITed for) before the promotion.
  const handedOutBefore = await login(app, user.username, user.password)

  const master = sentinel.server(0)
  t.equal(await sentinel.masterPort(), master.port)
  master.kill('SIGKILL')
  const killedAt = Date.now()

  // While the Sentinel waits out down-after (1 s) and promotes: only 200 or a fast 503.
  let longest = 0
  let recoveredAt = 0
  const statuses = new Set<number>()
  while (Date.now() - killedAt < 20_000) {
    const started = Date.now()
    const response = await refresh(app, tokens.refresh_token)
    longest = Math.max(longest, Date.now() - started)
    statuses.add(response.statusCode)
    if (response.statusCode === 200) {
      tokens = response.json<Tokens>()
      recoveredAt = Date.now()
      break
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.comment(`recovered ${recoveredAt - killedAt} ms after the kill; longest request ${longest} ms`)
  t.ok(recoveredAt > 0, 'refreshes succeed again without a restart')
  t.same([...statuses].filter((status) => status !== 200 && status !== 503), [], 'only 200 or 503 meanwhile')
  // A client that waited the failover out would see one slow 200 and no 503.
  t.ok(statuses.has(503), 'the outage was answered with 503s, not waited out')
  // Bounded by REDIS_COMMAND_TIMEOUT (1 s); the rest is margin for a loaded machine.
  t.ok(longest < 3000, `no request hung: the longest took ${longest} ms`)
  // INFO sentinel shows the new address once the failover is complete, a little after the promotion.
  let promoted = await sentinel.masterPort()
  for (const until = Date.now() + 10_000; promoted === master.port && Date.now() < until;) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    promoted = await sentinel.masterPort()
  }
  t.ok(promoted === sentinel.server(1).port || promoted === sentinel.server(2).port, `a replica is the master now (:${promoted}, was :${master.port})`)
  t.equal((await refresh(app, handedOutBefore.refresh_token)).statusCode, 200, 'the token handed out before the promotion survived it')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'and the one handed out on recovery works too')
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready again')
})

