import t from 'tap'
import type { Cluster } from 'ioredis'
import type { LightMyRequestResponse } from 'fastify'
import { startRedisCluster } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { register, login, refresh, bearer, decodeJwt, testClient, untilReady, type Tokens } from './helper.js'

// A master of a real Redis Cluster is SIGKILLed under a bounded load of
// refreshes and logins for one user whose keys it holds. What a client may
// see meanwhile: 200, or a fast 503 to retry; never a 500, never a hang, and
// never a token the cluster forgot. Then the replica is promoted and the
// service recovers by itself.

const LOAD_MS = 20_000 // the longest the load runs, however the failover goes
const KILL_AFTER_MS = 1500
const STEADY_AFTER_RECOVERY_MS = 2000
const REFRESHERS = 3
const PAUSE_MS = 20

interface Sample { kind: 'refresh' | 'login', startedAt: number, ms: number, status: number }

t.test('a master killed mid-load: fast 503s, nothing lost, recovery without a restart', async (t) => {
  // Two replicas per master: once one is promoted, its shard still has a replica to WAIT for.
  const started = await startRedisCluster({ replicasPerMaster: 2 })
  t.teardown(async () => { await started.stop() })
  const backend = { kind: 'cluster', cluster: started, env: { REDIS_CLUSTER_NODES: started.seeds } } as const
  const prefix = 'failover:'
  const app = await buildApp(loadConfig({
    ...backend.env,
    REDIS_KEY_PREFIX: prefix,
    MAX_SESSIONS_PER_USER: '10000',
    // A token is handed out only once a replica holds its session, so the promotion cannot lose it.
    REDIS_WAIT_REPLICAS: '1',
    // A login answered 503 keeps its reserved failure; the load must not lock its own account.
    RATE_LIMIT_ACCOUNT_FAILURES: '100000',
    RATE_LIMIT_IP_FAILURES: '100000',
    LOG_LEVEL: 'silent'
  }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  await untilReady(app)
  const cluster = testClient(backend) as Cluster
  t.teardown(() => { cluster.disconnect() })
  const user = await register(app, 'failover')

  // Which master holds the user's slot, and which node index that is.
  const slot = await cluster.cluster('KEYSLOT', `${prefix}user:{${user.id}}`) as number
  const ranges = await cluster.cluster('SLOTS') as Array<[number, number, [string, number]]>
  const owner = ranges.find(([from, to]) => slot >= from && slot <= to)![2][1]
  const victim = backend.cluster.nodes.findIndex((node) => node.port === owner)
  t.ok(victim >= 0, `slot ${slot} lives on :${owner}`)

  const samples: Sample[] = []
  const loginSids = new Set<string>()
  const timed = async (kind: Sample['kind'], request: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse> => {
    const startedAt = Date.now()
    const response = await request()
    samples.push({ kind, startedAt, ms: Date.now() - startedAt, status: response.statusCode })
    return response
  }

  const holders: Array<{ token: string }> = []
  for (let i = 0; i < REFRESHERS; i++) holders.push({ token: (await login(app, user.username, user.password)).refresh_token })

  const start = Date.now()
  let killedAt = 0
  let recoveredAt = 0
  let stop = false
  const readiness: Array<{ at: number, status: number }> = []
  const loadEnds = start + LOAD_MS

  // Each refresher keeps one session going: on 200 it holds the successor,
  // on 503 it retries the same token (a lost response, as a real client would).
  const refresher = async (holder: { token: string }): Promise<void> => {
    while (!stop && Date.now() < loadEnds) {
      const response = await timed('refresh', async () => await refresh(app, holder.token))
      if (response.statusCode === 200) holder.token = response.json<Tokens>().refresh_token
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS))
    }
  }
  const loginLoop = async (): Promise<void> => {
    while (!stop && Date.now() < loadEnds) {
      const response = await timed('login', async () => await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: user.username, password: user.password } }))
      if (response.statusCode === 200) loginSids.add(decodeJwt(response.json<Tokens>().access_token).payload.sid as string)
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS * 5))
    }
  }
  const monitor = async (): Promise<void> => {
    while (!stop && Date.now() < loadEnds) {
      const now = Date.now()
      if (killedAt === 0 && now - start >= KILL_AFTER_MS) {
        backend.cluster.node(victim).kill('SIGKILL')
        killedAt = Date.now()
      }
      readiness.push({ at: now, status: (await app.inject('/readyz')).statusCode })
      if (killedAt > 0 && recoveredAt === 0) {
        // Recovered: the last requests since the kill all succeeded, and the service says it is ready.
        const recent = samples.filter((sample) => sample.startedAt > killedAt).slice(-2 * REFRESHERS)
        if (recent.length === 2 * REFRESHERS && recent.every((sample) => sample.status === 200) && readiness.at(-1)!.status === 200) {
          recoveredAt = Math.min(...recent.map((sample) => sample.startedAt))
        }
      }
      if (recoveredAt > 0 && now - recoveredAt > STEADY_AFTER_RECOVERY_MS) stop = true
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    stop = true
  }
  await Promise.all([monitor(), loginLoop(), ...holders.map(refresher)])

  const afterKill = samples.filter((sample) => sample.startedAt >= killedAt)
  const failed = afterKill.filter((sample) => sample.status !== 200)
  const longestFailure = Math.max(0, ...failed.map((sample) => sample.ms))
  const longest = Math.max(...samples.map((sample) => sample.ms))
  const unready = readiness.filter((probe) => probe.at >= killedAt && probe.status !== 200)
  t.comment(`killed :${owner} at +${killedAt - start} ms; ${samples.length} requests, ${failed.length} failed after the kill ` +
    `(longest failed ${longestFailure} ms, longest of all ${longest} ms); recovered ${recoveredAt - killedAt} ms after the kill; ` +
    `/readyz unready for ${unready.length} of ${readiness.filter((probe) => probe.at >= killedAt).length} probes; ` +
    `statuses ${JSON.stringify(Object.fromEntries([...new Set(samples.map((sample) => `${sample.kind} ${sample.status}`))].map((key) => [key, samples.filter((sample) => `${sample.kind} ${sample.status}` === key).length])))}`)

  t.ok(killedAt > 0, 'the master was killed under load')
  t.same([...new Set(samples.map((sample) => sample.status))].filter((status) => status !== 200 && status !== 503), [], 'every answer was 200 or 503: never a 500, never a 400 for a good token')
  // A client that waited the failover out would see slow 200s and no 503.
  t.ok(failed.length > 0, `the outage was answered with 503s, not waited out (${failed.length})`)
  // Bounded by REDIS_COMMAND_TIMEOUT (1 s) and a password hash; the rest is margin for a loaded machine.
  t.ok(longest < 4000, `no request hung: the longest took ${longest} ms`)
  t.ok(recoveredAt > 0, `requests succeed again on their own, ${recoveredAt - killedAt} ms after the kill, within ${LOAD_MS} ms of load`)
  t.equal(readiness.at(-1)?.status, 200, '/readyz is ready again')

  // Nothing the clients were given was forgotten by the promoted replica.
  for (const holder of holders) {
    t.equal((await refresh(app, holder.token)).statusCode, 200, 'the last refresh token each client holds still works')
  }
  const access = await login(app, user.username, user.password)
  const listed = (await app.inject({ url: '/sessions', headers: bearer(access.access_token) })).json<{ sessions: Array<{ id: string }> }>().sessions.map((session) => session.id)
  const missing = [...loginSids].filter((sid) => !listed.includes(sid))
  t.same(missing, [], `all ${loginSids.size} sessions that logins returned are recorded`)
})
