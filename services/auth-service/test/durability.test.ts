import t from 'tap'
import { Redis } from 'ioredis'
import { startRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { register, login, refresh, bearer, decodeJwt, keysWithTtl, type Tokens } from './helper.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

// Every revocation deletes state; the one denylist (revoked access tokens) lives only as long as the token would.
t.test('Redis killed with SIGKILL and restarted from its AOF (everysec): revoked stays revoked, at most the last second is lost', async (t) => {
  const server = await startRedis({ appendonly: true, extraArgs: ['--appendfsync', 'everysec'] })
  t.teardown(async () => { await server.stop() })
  const prefix = 'durable:'
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', REFRESH_REUSE_GRACE: '0' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })

  const user = await register(app, 'durable')
  const other = await register(app, 'bystander')
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

  await sleep(2500)
  // The last moment: written within the fsync interval before the crash.
  const late: Tokens[] = []
  for (let i = 0; i < 5; i++) late.push(await session())
  server.kill('SIGKILL')
  await server.restart()
  for (let i = 0; i < 100 && (await app.inject('/readyz')).statusCode !== 200; i++) await sleep(100)

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
  for (const [key, keyTtl] of await keysWithTtl(redis, `${prefix}user:`)) {
    if (/:session|revoked-token/.test(key)) t.ok(keyTtl > 0, `${key} has a TTL after the restart`)
  }

  let survived = 0
  for (const tokens of late) if (await sessionsWith(tokens) === 200) survived++
  // A killed process loses nothing Redis has written to the OS; only a machine crash loses the unsynced second.
  t.comment(`${survived} of ${late.length} sessions created in the last moment before SIGKILL survived`)
})
