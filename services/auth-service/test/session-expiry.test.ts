import t from 'tap'
import { loadConfig } from '../src/app.js'
import { setup, register, login, refresh, bearer, decodeJwt, until, untilReady, type TestClock } from './helper.js'

// Elsewhere a session's lifetime is judged by the scripts against a clock the
// test moves. Here nothing is moved: the service runs on the real clock, the
// idle lifetime is the shortest the configuration allows, and Redis's own TTL
// is what ends the session.
const IDLE_S = 60

const realClock: TestClock = {
  now: () => Date.now(),
  advance: () => { throw new Error('this test runs on the real clock') }
}

t.test(`a session left idle is removed by Redis's TTL after REFRESH_TOKEN_TTL (${IDLE_S} s, the floor), and its refresh token is then invalid_grant`, async (t) => {
  t.throws(() => loadConfig({ REFRESH_TOKEN_TTL: String(IDLE_S - 1) }), /^REFRESH_TOKEN_TTL /, `${IDLE_S} s is the shortest idle lifetime there is`)
  const { app, redis, prefix } = await setup(t, { REFRESH_TOKEN_TTL: String(IDLE_S) }, { clock: realClock })
  await untilReady(app)
  const user = await register(app, 'idler')
  const tokens = await login(app, 'idler', user.password)
  const loggedInAt = Date.now()
  const sid = decodeJwt(tokens.access_token).payload.sid as string
  const session = `${prefix}user:{${user.id}}:session:${sid}`
  const index = `${prefix}user:{${user.id}}:sessions`

  const ttl = await redis.pttl(session)
  t.ok(ttl > (IDLE_S - 5) * 1000 && ttl <= IDLE_S * 1000, `Redis holds the session with a TTL of ${ttl} ms`)

  // EXISTS on an expired key deletes it at once (Redis's lazy expiry), so this sees the TTL run out, however busy the server.
  await until('Redis to expire the session', async () => await redis.exists(session) === 0, (IDLE_S + 30) * 1000)
  const livedMs = Date.now() - loggedInAt
  t.ok(livedMs >= ttl - 1000, `the key lived its TTL: gone after ${livedMs} ms`)

  const response = await refresh(app, tokens.refresh_token)
  t.equal(response.statusCode, 400)
  t.equal(response.json().error, 'invalid_grant')
  t.equal(await redis.exists(session), 0, 'the refresh did not bring the session back')
  t.equal(await redis.exists(index), 0, 'and the session index, which held only it, expired with it')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 401, 'its access token no longer lists sessions')
})
