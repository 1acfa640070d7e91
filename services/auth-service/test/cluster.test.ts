import t from 'tap'
import type { Cluster } from 'ioredis'
import { setup, register, login, refresh, bearer, decodeJwt, keysWithTtl, testClock } from './helper.js'

// The token lifecycle on a real Redis Cluster (3 masters, 3 replicas), whatever
// BATON_TEST_REDIS says: every script must find all its keys in one slot.
const CLIENTS = JSON.stringify([
  { client_id: 'gateway', client_secret: 'gateway-secret-0123456789', grant_types: ['client_credentials'], scope: 'introspect', introspection: true }
])
const gateway = { authorization: `Basic ${Buffer.from('gateway:gateway-secret-0123456789').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' }

t.test('the token lifecycle on a Redis Cluster', async (t) => {
  const clock = testClock()
  const { app, redis, prefix } = await setup(t, {
    CLIENTS,
    MAX_SESSIONS_PER_USER: '3',
    // Timeouts are cluster-failover.test.ts's subject; here a busy test machine must not turn into 503s.
    REDIS_COMMAND_TIMEOUT: '5000',
    // As production should run it: a token is handed out only once a replica holds its session.
    REDIS_WAIT_REPLICAS: '1',
    RATE_LIMIT_ACCOUNT_FAILURES: '2',
    KEY_ROTATION_INTERVAL: '0',
    JWKS_MAX_AGE: '5',
    KEYRING_RELOAD_INTERVAL: '5',
    KEY_PUBLISH_AHEAD: '10'
  }, { backend: 'cluster', clock })
  const cluster = redis as Cluster
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready on the cluster')

  // Ten users: their keys all landing on one of three masters is a 1-in-20 000 chance.
  const users = await Promise.all(['ada', 'grace', 'edsger', 'barbara', 'ken', 'dennis', 'alan', 'donald', 'frances', 'john']
    .map(async (name) => await register(app, name)))
  const ada = users[0]!

  t.test('register and login', async (t) => {
    const taken = await app.inject({ method: 'POST', url: '/users', payload: { username: 'ADA', password: 'another password' } })
    t.equal(taken.statusCode, 409, 'a name is claimed across slots, case-insensitively')
    const tokens = await login(app, 'ada', ada.password)
    t.equal(tokens.token_type, 'Bearer')
    t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 200)
  })

  t.test('refresh rotation, the grace-window retry, reuse revoking the family', async (t) => {
    const first = await login(app, 'ada', ada.password)
    const rotated = await refresh(app, first.refresh_token)
    t.equal(rotated.statusCode, 200)
    const second = rotated.json<{ refresh_token: string }>().refresh_token
    t.not(second, first.refresh_token, 'a new refresh token')
    const retried = await refresh(app, first.refresh_token)
    t.equal(retried.statusCode, 200, 'a retry inside the grace window')
    t.equal(retried.json<{ refresh_token: string }>().refresh_token, second, 'gets the same successor')
    clock.advance(11_000)
    const reused = await refresh(app, first.refresh_token)
    t.equal(reused.statusCode, 400)
    t.equal(reused.json().error, 'invalid_grant')
    t.equal((await refresh(app, second)).statusCode, 400, 'the whole family is revoked')
  })

  t.test('sessions: list, end one, evict beyond the maximum, end all', async (t) => {
    const grace = users[1]!
    const logins = []
    // The clock moves between logins, so "least recently used" has one answer.
    const next = async () => { clock.advance(1000); return await login(app, grace.username, grace.password) }
    for (let i = 0; i < 3; i++) logins.push(await next())
    const listed = await app.inject({ url: '/sessions', headers: bearer(logins[2]!.access_token) })
    t.equal(listed.json<{ sessions: unknown[] }>().sessions.length, 3)

    const sid = decodeJwt(logins[1]!.access_token).payload.sid as string
    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${sid}`, headers: bearer(logins[2]!.access_token) })).statusCode, 204)
    t.equal((await refresh(app, logins[1]!.refresh_token)).statusCode, 400, 'that session is over')

    // Three live sessions again, then a fourth: the least recently used one goes.
    logins.push(await next())
    logins.push(await next())
    t.equal((await refresh(app, logins[0]!.refresh_token)).statusCode, 400, 'the oldest session was evicted')
    const remaining = (await app.inject({ url: '/sessions', headers: bearer(logins[4]!.access_token) })).json<{ sessions: Array<{ id: string }> }>().sessions
    t.equal(remaining.length, 3)

    t.equal((await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(logins[4]!.access_token) })).statusCode, 204)
    for (const tokens of logins.slice(2)) t.equal((await refresh(app, tokens.refresh_token)).statusCode, 400, 'logged out everywhere')
    t.equal((await app.inject({ url: '/sessions', headers: bearer(logins[4]!.access_token) })).statusCode, 401, 'its access token is refused')
  })

  t.test('a password change ends the other sessions', async (t) => {
    const edsger = users[2]!
    const other = await login(app, edsger.username, edsger.password)
    const current = await login(app, edsger.username, edsger.password)
    const changed = await app.inject({
      method: 'POST',
      url: '/users/me/password',
      headers: bearer(current.access_token),
      payload: { current_password: edsger.password, new_password: 'a brand new passphrase', keep_current_session: true }
    })
    t.equal(changed.statusCode, 204)
    t.equal((await refresh(app, other.refresh_token)).statusCode, 400, 'the other session ended')
    t.equal((await refresh(app, current.refresh_token)).statusCode, 200, 'the current one was kept')
    const old = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: edsger.username, password: edsger.password } })
    t.equal(old.statusCode, 400, 'the old password no longer works')
    await login(app, edsger.username, 'a brand new passphrase')
  })

  t.test('revocation and introspection', async (t) => {
    const barbara = users[3]!
    const tokens = await login(app, barbara.username, barbara.password)
    const introspect = async (token: string) => (await app.inject({ method: 'POST', url: '/oauth/introspect', headers: gateway, payload: new URLSearchParams({ token }).toString() })).json<{ active: boolean }>()
    t.equal((await introspect(tokens.access_token)).active, true)
    t.equal((await introspect(tokens.refresh_token)).active, true)
    const revoked = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ token: tokens.access_token }).toString() })
    t.equal(revoked.statusCode, 200)
    t.same(await introspect(tokens.access_token), { active: false }, 'a revoked access token')
    await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ token: tokens.refresh_token }).toString() })
    t.same(await introspect(tokens.refresh_token), { active: false }, 'a revoked session')
    t.equal((await refresh(app, tokens.refresh_token)).statusCode, 400)
  })

  t.test('rate limits: a locked account refuses even the right password', async (t) => {
    const ken = users[4]!
    for (let i = 0; i < 2; i++) {
      const wrong = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: ken.username, password: 'not the password' } })
      t.equal(wrong.statusCode, 400)
    }
    const locked = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: ken.username, password: ken.password } })
    t.equal(locked.statusCode, 429)
    t.equal(locked.json().error, 'slow_down')
    t.ok(Number(locked.headers['retry-after']) > 0)
  })

  t.test('key rotation: a new key is published, then signs', async (t) => {
    const dennis = users[5]!
    const before = await login(app, dennis.username, dennis.password)
    const rotated = await app.keyring.rotate()
    t.equal(rotated.status, 'added')
    const jwks = (await app.inject('/.well-known/jwks.json')).json<{ keys: Array<{ kid: string }> }>().keys.map((key) => key.kid)
    t.ok(jwks.includes(rotated.key!.kid), 'published before it signs')
    clock.advance(10_000)
    const after = await login(app, dennis.username, dennis.password)
    t.equal(decodeJwt(after.access_token).header.kid, rotated.key!.kid, 'the new key signs')
    t.equal((await app.inject({ url: '/sessions', headers: bearer(before.access_token) })).statusCode, 200, 'tokens of the old key still verify')
  })

  t.test('every user\'s keys share one slot, and the users spread over the masters', async (t) => {
    const slotsByUser = new Map<string, Set<number>>()
    const masters = new Set<string>()
    const nodeOfSlot = new Map<number, string>()
    for (const [from, to, [host, port]] of await cluster.cluster('SLOTS') as Array<[number, number, [string, number]]>) {
      for (let slot = from; slot <= to; slot++) nodeOfSlot.set(slot, `${host}:${port}`)
    }
    for (const key of (await keysWithTtl(cluster, prefix)).keys()) {
      const uid = /user:\{([^}]+)\}/.exec(key)?.[1]
      if (uid === undefined) continue
      const slot = await cluster.cluster('KEYSLOT', key) as number
      slotsByUser.set(uid, (slotsByUser.get(uid) ?? new Set()).add(slot))
      masters.add(nodeOfSlot.get(slot)!)
    }
    t.equal(slotsByUser.size, users.length, 'every user has keys')
    for (const [uid, slots] of slotsByUser) t.equal(slots.size, 1, `the keys of ${uid} sit in one slot`)
    t.ok(masters.size >= 2, `the users' keys live on ${masters.size} masters`)
  })
})

t.test('REDIS_WAIT_REPLICAS beyond the replicas there are: no token is handed out', async (t) => {
  const { app } = await setup(t, { REDIS_WAIT_REPLICAS: '2', REDIS_COMMAND_TIMEOUT: '400' }, { backend: 'cluster' })
  const user = await register(app, 'ada')
  const started = Date.now()
  const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'ada', password: user.password } })
  t.equal(response.statusCode, 503, 'each master has one replica, not two')
  t.equal(response.json().error, 'temporarily_unavailable')
  t.notOk('refresh_token' in response.json(), 'no token')
  // An unbounded WAIT would never return; the command timeout (400 ms) and a password hash take well under this on a loaded machine.
  const ms = Date.now() - started
  t.ok(ms < 5000, `answered in ${ms} ms: WAIT is bounded by the command timeout`)
})
