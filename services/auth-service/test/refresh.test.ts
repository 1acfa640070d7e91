import t from 'tap'
import { setup, register, login, refresh, decodeJwt, keysWithTtl, dumpStrings, bearer, testClock } from './helper.js'

const DAY = 86_400_000

t.test('refresh rotation', async (t) => {
  const clock = testClock()
  // A second public client, configured, so a token it presents reaches the grant rather than stopping at client authentication.
  const CLIENTS = JSON.stringify([{ client_id: 'other', grant_types: ['password', 'refresh_token'] }])
  const { app } = await setup(t, { REFRESH_REUSE_GRACE: '10s', DEFAULT_SCOPES: 'profile reports:read', CLIENTS }, { clock })
  const user = await register(app, 'Frank')

  t.test('each refresh returns a new refresh token and the old one stops working', async (t) => {
    const first = await login(app, 'Frank', user.password)
    const response = await refresh(app, first.refresh_token)
    t.equal(response.statusCode, 200)
    t.equal(response.headers['cache-control'], 'no-store')
    const second = response.json()
    t.not(second.refresh_token, first.refresh_token)
    t.not(second.access_token, first.access_token)
    t.equal(decodeJwt(second.access_token as string).payload.sid, decodeJwt(first.access_token).payload.sid, 'same session')
    t.equal(second.scope, 'profile reports:read')

    const third = await refresh(app, second.refresh_token as string)
    t.equal(third.statusCode, 200, 'the successor works')
  })

  t.test('scope may narrow on refresh; a wider scope is refused and leaves the token usable', async (t) => {
    const tokens = await login(app, 'Frank', user.password, { scope: 'profile' })
    const wider = await refresh(app, tokens.refresh_token, { scope: 'profile reports:read' })
    t.equal(wider.statusCode, 400)
    t.equal(wider.json().error, 'invalid_scope')
    const same = await refresh(app, tokens.refresh_token, { scope: 'profile' })
    t.equal(same.statusCode, 200, 'the refused request consumed nothing')
  })

  t.test('a retry inside the grace window gets the same successor, never a second branch', async (t) => {
    const tokens = await login(app, 'Frank', user.password)
    const first = (await refresh(app, tokens.refresh_token)).json()
    clock.advance(5_000)
    const retry = await refresh(app, tokens.refresh_token)
    t.equal(retry.statusCode, 200)
    t.equal(retry.json().refresh_token, first.refresh_token, 'same successor')
    t.not(retry.json().access_token, first.access_token, 'a fresh access token')
    const next = await refresh(app, first.refresh_token as string)
    t.equal(next.statusCode, 200, 'the shared successor still rotates normally')
  })

  t.test('20 concurrent refreshes of one token: never a 5xx, one successor at most', async (t) => {
    const tokens = await login(app, 'Frank', user.password)
    const responses = await Promise.all(Array.from({ length: 20 }, async () => await refresh(app, tokens.refresh_token)))
    t.ok(responses.every((response) => response.statusCode < 500), 'no 5xx')
    const successors = new Set(responses.filter((response) => response.statusCode === 200).map((response) => response.json().refresh_token as string))
    t.equal(successors.size, 1, 'exactly one successor')
    // REFRESH_GRACE_RETRIES (5 by default) retries besides the rotation; the rest are refused, not taken for theft.
    t.equal(responses.filter((response) => response.statusCode === 200).length, 6, 'the rotation and 5 retries inside the grace window are served')
    t.ok(responses.filter((response) => response.statusCode !== 200).every((response) => response.statusCode === 400 && response.json().error === 'invalid_grant'),
      'the others get invalid_grant')
    const [successor] = successors
    t.equal((await refresh(app, successor!)).statusCode, 200, 'and that successor is live: no racer ended the session')
  })

  t.test('reuse after the grace window revokes the whole family', async (t) => {
    const tokens = await login(app, 'Frank', user.password)
    const second = (await refresh(app, tokens.refresh_token)).json()
    clock.advance(10_001)
    const replay = await refresh(app, tokens.refresh_token)
    t.equal(replay.statusCode, 400)
    t.equal(replay.json().error, 'invalid_grant')
    t.match(replay.json().error_description, /revoked/)

    const successor = await refresh(app, second.refresh_token as string)
    t.equal(successor.statusCode, 400, 'the successor died with its family')
    t.equal(successor.json().error, 'invalid_grant')
    const me = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(second.access_token as string) })
    t.equal(me.statusCode, 401, 'the family\'s access tokens are refused where revocation is checked')
  })

  t.test('an older generation replayed inside the window is still theft', async (t) => {
    const t1 = await login(app, 'Frank', user.password)
    const t2 = (await refresh(app, t1.refresh_token)).json()
    const t3 = (await refresh(app, t2.refresh_token as string)).json()
    const replay = await refresh(app, t1.refresh_token)
    t.equal(replay.statusCode, 400)
    t.equal((await refresh(app, t3.refresh_token as string)).statusCode, 400, 'family revoked')
  })

  t.test('a token presented by another client is invalid_grant', async (t) => {
    const tokens = await login(app, 'Frank', user.password)
    // The other client is a real one: it logs in, so what refuses it below is the grant, not client authentication.
    await login(app, 'Frank', user.password, { client_id: 'other' })
    const response = await refresh(app, tokens.refresh_token, { client_id: 'other' })
    t.equal(response.statusCode, 400)
    t.equal(response.json().error, 'invalid_grant')
    t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'nothing changed: the token still works for its own client')
  })

  t.test('forged, truncated and garbage tokens are invalid_grant and revoke nothing', async (t) => {
    const tokens = await login(app, 'Frank', user.password)
    const raw = Buffer.from(tokens.refresh_token, 'base64url')
    raw[50] = raw[50]! ^ 1
    const garbage = [raw.toString('base64url'), tokens.refresh_token.slice(0, -1), `${tokens.refresh_token}A`, 'x', '🙂'.repeat(54), tokens.refresh_token.replace(/.$/, '=')]
    for (const token of garbage) {
      const response = await refresh(app, token)
      t.equal(response.statusCode, 400)
      t.equal(response.json().error, 'invalid_grant')
    }
    t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'the real token still works')
  })
})

t.test('session lifetimes', async (t) => {
  const clock = testClock()
  const { app, redis, prefix } = await setup(t, { REFRESH_TOKEN_TTL: '1d', SESSION_MAX_TTL: '3d' }, { clock })
  const user = await register(app, 'Grace')

  t.test('a session ends REFRESH_TOKEN_TTL after its last use', async (t) => {
    const tokens = await login(app, 'Grace', user.password)
    clock.advance(DAY - 1000)
    const kept = await refresh(app, tokens.refresh_token)
    t.equal(kept.statusCode, 200, 'used just in time: renewed')
    clock.advance(DAY + 1)
    const late = await refresh(app, kept.json().refresh_token as string)
    t.equal(late.statusCode, 400)
    t.match(late.json(), { error: 'invalid_grant', error_description: /expired/ })
  })

  t.test('and SESSION_MAX_TTL after login, however often it is used', async (t) => {
    let token = (await login(app, 'Grace', user.password)).refresh_token
    for (let day = 0; day < 3; day++) {
      clock.advance(DAY - 60_000)
      const response = await refresh(app, token)
      t.equal(response.statusCode, 200, `day ${day + 1}`)
      token = response.json().refresh_token as string
    }
    // Used 3 minutes ago, so not idle; but 3 days and 20 s after login.
    clock.advance(200_000)
    const response = await refresh(app, token)
    t.equal(response.statusCode, 400, 'past the absolute lifetime')
    t.match(response.json().error_description, /expired/)
  })

  t.test('every session key carries TTL = min(idle, remaining absolute)', async (t) => {
    const tokens = await login(app, 'Grace', user.password)
    const sid = decodeJwt(tokens.access_token).payload.sid as string
    const sessionKey = `${prefix}user:{${user.id}}:session:${sid}`
    const ttl = await redis.pttl(sessionKey)
    t.ok(ttl > DAY - 5000 && ttl <= DAY, `fresh session: idle TTL (${ttl} ms)`)
    clock.advance(2.5 * DAY)
    // Redis's own clock has not moved; the TTL set at rotation is relative: remaining absolute = 0.5 day.
    const first = await refresh(app, tokens.refresh_token)
    t.equal(first.statusCode, 400, 'idle for 2.5 days: gone')

    const again = await login(app, 'Grace', user.password)
    const sid2 = decodeJwt(again.access_token).payload.sid as string
    let token = again.refresh_token
    for (let i = 0; i < 3; i++) {
      clock.advance(DAY - 60_000)
      token = (await refresh(app, token)).json().refresh_token as string
    }
    const remaining = 3 * DAY - 3 * (DAY - 60_000)
    const ttl2 = await redis.pttl(`${prefix}user:{${user.id}}:session:${sid2}`)
    t.ok(ttl2 <= remaining && ttl2 > remaining - 5000, `near the end, TTL is the remaining absolute lifetime (${ttl2} ms)`)
  })
})

t.test('an access token is honoured by the auth-service only while its session lives, even before Redis reaps the session', async (t) => {
  const clock = testClock()
  // Access tokens outliving the session's idle lifetime: the session, not the token, must decide.
  const { app } = await setup(t, { REFRESH_TOKEN_TTL: '1m', ACCESS_TOKEN_TTL: '10m' }, { clock })
  const user = await register(app, 'Idle')
  const tokens = await login(app, 'Idle', user.password)
  clock.advance(59_000)
  t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 200, 'within the idle lifetime')
  // The service's clock is past the session's end; Redis's own clock, which expires the key, is not.
  clock.advance(2000)
  const late = await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })
  t.equal(late.statusCode, 401, 'the session has ended: 401')
  t.equal(late.json().error, 'invalid_token', 'invalid_token')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 400, 'and its refresh token is refused too')
})

t.test('what Redis holds', async (t) => {
  const { app, redis, prefix } = await setup(t)
  const user = await register(app, 'Heidi')
  const issued: string[] = []
  for (let i = 0; i < 3; i++) {
    const tokens = await login(app, 'Heidi', user.password)
    issued.push(tokens.refresh_token)
    const next = (await refresh(app, tokens.refresh_token)).json()
    issued.push(next.refresh_token as string)
  }

  const stored = await dumpStrings(redis, prefix)
  for (const token of issued) {
    t.notOk(stored.includes(token), 'no refresh token in plain text')
    t.notOk(stored.includes(token.slice(22, 86)), 'not even its secret part')
  }

  const keys = await keysWithTtl(redis, prefix)
  const durable = [`${prefix}user:{${user.id}}`, `${prefix}username:heidi`, `${prefix}signing-keys`, `${prefix}refresh-token-secret`]
  for (const [key, ttl] of keys) {
    if (durable.includes(key)) continue
    t.ok(ttl > 0, `${key} has a TTL`)
  }
  t.ok([...keys.keys()].some((key) => key.includes(':session:')), 'sessions were scanned')
  for (const key of keys.keys()) {
    if (key.startsWith(`${prefix}user:{`)) t.match(key, new RegExp(`^${prefix}user:\\{${user.id}\\}`), 'a user\'s keys share one hash tag')
  }
})
