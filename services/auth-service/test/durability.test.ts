import t from 'tap'
import { Redis } from 'ioredis'
import { startRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { register, login, refresh, bearer, decodeJwt, keysWithTtl, untilReady, type Tokens } from './helper.js'

// README, "Persistence": a killed Redis process loses nothing acknowledged, except
// while an fsync lags, when everysec answers before writing for up to 2 s.
const EVERYSEC_LAG_MS = 2000

// Every revocation deletes state; the one denylist (revoked access tokens) lives only as long as the token would.
t.test('Redis killed with SIGKILL and restarted from its AOF (everysec): revoked stays revoked, nothing older than the fsync lag is lost', async (t) => {
  const server = await startRedis({ appendonly: true, extraArgs: ['--appendfsync', 'everysec'] })
  t.teardown(async () => { await server.stop() })
  const prefix = 'durable:'
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', REFRESH_REUSE_GRACE: '0', MAX_SESSIONS_PER_USER: '10000' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })

  const user = await register(app, 'durable')
  const other = await register(app, 'bystander')
  const latecomer = await register(app, 'latecomer')
  const session = async (): Promise<Tokens> => await login(app, 'durable', user.password)

  // Settled writes: more than two fsync intervals before the crash.
  const live = await session()
  const rotatedFrom = await session()
  const rotated = (await refresh(app, rotatedFrom.refresh_token)).json<Tokens>()
  const loggedOut = await session()
  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${decodeJwt(loggedOut.access_token).payload.sid as string}`, headers: bearer(loggedOut.access_token) })).statusCode, 204)
  const revokedRefresh = await session()
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: revokedRefresh.refresh_token } })).statusCode, 200)
  const revokedAccess = await session()
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: revokedAccess.access_token } })).statusCode, 200)
  const stolen = await session()
  const thief = (await refresh(app, stolen.refresh_token)).json<Tokens>()
  t.equal((await refresh(app, stolen.refresh_token)).statusCode, 400, 'reuse detected: the session is revoked')
  const everywhere = await login(app, 'bystander', other.password)
  const everywhereToo = await login(app, 'bystander', other.password)
  t.equal((await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(everywhere.access_token) })).statusCode, 204)

  // Logins right up to the crash, each timed by when its answer came: what the
  // restarted server lost must all have been answered within the lag.
  const late: Array<{ tokens: Tokens, at: number }> = []
  for (const until = Date.now() + EVERYSEC_LAG_MS + 1000; Date.now() < until;) {
    late.push({ tokens: await login(app, 'latecomer', latecomer.password), at: Date.now() })
  }
  server.kill('SIGKILL')
  const killedAt = Date.now()
  await server.restart()
  await untilReady(app)

  const refreshes = async (tokens: Tokens): Promise<number> => (await refresh(app, tokens.refresh_token)).statusCode
  const sessionsWith = async (tokens: Tokens): Promise<number> => (await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode

  t.equal(await sessionsWith(live), 200, 'a live session survives')
  t.equal(await refreshes(rotated), 200, 'so does its latest rotation')
  t.equal(await refreshes(rotatedFrom), 400, 'and the token it replaced stays spent')
  for (const [what, tokens] of [['logged out', loggedOut], ['revoked (RFC 7009)', revokedRefresh], ['reuse-revoked', stolen], ['the thief\'s successor', thief], ['ended everywhere', everywhere], ['ended everywhere, too', everywhereToo]] as const) {
    t.equal(await refreshes(tokens), 400, `${what}: the refresh token stays dead`)
    t.equal(await sessionsWith(tokens), 401, `${what}: the access token stays refused`)
  }
  t.equal(await sessionsWith(revokedAccess), 401, 'a revoked access token stays refused')
  t.equal(await refreshes(revokedAccess), 200, 'while its session, never revoked, lives on')

  // The denylist entry outlives nothing: it expires when the token would have.
  const { sub, jti, exp } = decodeJwt(revokedAccess.access_token).payload as { sub: string, jti: string, exp: number }
  const ttl = await redis.pttl(`${prefix}user:{${sub}}:revoked-token:${jti}`)
  t.ok(ttl > 0 && ttl <= exp * 1000 + app.config.CLOCK_SKEW * 1000 - Date.now() + 1000, `denylist entry TTL ${ttl} ms ≤ the token's remaining life`)
  const expiring = [...await keysWithTtl(redis, `${prefix}user:`)].filter(([key]) => /:session|revoked-token/.test(key))
  t.ok(expiring.length > 0, `${expiring.length} session and denylist keys are back`)
  t.same(expiring.filter(([, keyTtl]) => keyTtl <= 0).map(([key]) => key), [], 'each has a TTL after the restart')

  // How long before the crash each lost login had been answered.
  const lostAges: number[] = []
  for (const { tokens, at } of late) if (await sessionsWith(tokens) !== 200) lostAges.push(killedAt - at)
  t.comment(`${late.length - lostAges.length} of ${late.length} sessions created in the ${EVERYSEC_LAG_MS + 1000} ms before SIGKILL survived`)
  t.ok(late.some(({ at }) => killedAt - at > EVERYSEC_LAG_MS), 'some of them were answered longer than the lag before the crash')
  t.same(lostAges.filter((age) => age > EVERYSEC_LAG_MS), [], `only logins answered within ${EVERYSEC_LAG_MS} ms of the crash may be lost (lost, ms before: ${lostAges.join(', ') || 'none'})`)
})
