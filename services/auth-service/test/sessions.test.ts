import t from 'tap'
import { setup, register, login, refresh, bearer, decodeJwt } from './helper.js'

t.test('sessions', async (t) => {
  const { app } = await setup(t)
  const user = await register(app, 'Ivan')
  const other = await register(app, 'Judy')

  const loginFrom = async (agent: string) => {
    const response = await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'user-agent': agent }, payload: { grant_type: 'password', username: 'Ivan', password: user.password } })
    return response.json<{ access_token: string, refresh_token: string }>()
  }

  t.test('GET /sessions lists the caller\'s live sessions and marks the current one', async (t) => {
    const phone = await loginFrom('Phone/1.0')
    const laptop = await loginFrom('Laptop/2.0')
    await login(app, 'Judy', other.password)
    const response = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(laptop.access_token) })
    t.equal(response.statusCode, 200)
    t.equal(response.headers['cache-control'], 'no-store')
    const { sessions } = response.json<{ sessions: Array<Record<string, unknown>> }>()
    t.equal(sessions.length, 2, 'only Ivan\'s sessions')
    const current = sessions.find((session) => session.current === true)
    t.equal(current?.id, decodeJwt(laptop.access_token).payload.sid)
    t.match(current, { client_id: 'baton', user_agent: 'Laptop/2.0', ip: '127.0.0.1', created_at: /^\d{4}-\d\d-\d\dT/, last_used_at: /^\d{4}-/ })
    t.ok(sessions.some((session) => session.user_agent === 'Phone/1.0' && session.current === false))
    t.notOk(JSON.stringify(sessions).includes(phone.refresh_token), 'no token in the listing')
  })

  t.test('DELETE /sessions/:id ends one session: its refresh token and access tokens stop working', async (t) => {
    const phone = await loginFrom('Phone/1.0')
    const laptop = await loginFrom('Laptop/2.0')
    const phoneSid = decodeJwt(phone.access_token).payload.sid as string
    const response = await app.inject({ method: 'DELETE', url: `/sessions/${phoneSid}`, headers: bearer(laptop.access_token) })
    t.equal(response.statusCode, 204)
    t.equal((await refresh(app, phone.refresh_token)).statusCode, 400, 'refresh token dead')
    const denied = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(phone.access_token) })
    t.equal(denied.statusCode, 401, 'access token refused by the auth-service')
    t.match(denied.headers['www-authenticate'], /error="invalid_token"/)
    t.equal((await refresh(app, laptop.refresh_token)).statusCode, 200, 'the other session lives on')
    const again = await app.inject({ method: 'DELETE', url: `/sessions/${phoneSid}`, headers: bearer(laptop.access_token) })
    t.equal(again.statusCode, 404, 'already ended')
  })

  t.test('nobody can end another user\'s session', async (t) => {
    const judy = await login(app, 'Judy', other.password)
    const ivan = await loginFrom('Laptop/2.0')
    const response = await app.inject({ method: 'DELETE', url: `/sessions/${decodeJwt(judy.access_token).payload.sid as string}`, headers: bearer(ivan.access_token) })
    t.equal(response.statusCode, 404)
    t.equal((await refresh(app, judy.refresh_token)).statusCode, 200, 'Judy\'s session untouched')
  })

  t.test('DELETE /sessions logs out everywhere', async (t) => {
    const all = [await loginFrom('A'), await loginFrom('B'), await loginFrom('C')]
    const judy = await login(app, 'Judy', other.password)
    const response = await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(all[0]!.access_token) })
    t.equal(response.statusCode, 204)
    for (const tokens of all) {
      t.equal((await refresh(app, tokens.refresh_token)).statusCode, 400)
    }
    const listing = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(all[1]!.access_token) })
    t.equal(listing.statusCode, 401)
    t.equal((await refresh(app, judy.refresh_token)).statusCode, 200, 'other users keep their sessions')
  })

  t.test('bad Bearer requests get RFC 6750 answers', async (t) => {
    const none = await app.inject({ method: 'GET', url: '/sessions' })
    t.equal(none.statusCode, 401)
    // The routes take DPoP-bound tokens too, but a request without credentials keeps the contract's bare Bearer challenge.
    t.equal(none.headers['www-authenticate'], 'Bearer realm="baton"')
    const malformed = await app.inject({ method: 'GET', url: '/sessions', headers: { authorization: 'Bearer' } })
    t.equal(malformed.statusCode, 400)
    const garbage = await app.inject({ method: 'GET', url: '/sessions', headers: { authorization: 'Bearer abc.def.ghi' } })
    t.equal(garbage.statusCode, 401)
    t.match(garbage.headers['www-authenticate'], /error="invalid_token"/)
    const badId = await app.inject({ method: 'DELETE', url: '/sessions/..%2F..', headers: bearer((await loginFrom('X')).access_token) })
    t.equal(badId.statusCode, 400)
  })
})

t.test('password change', async (t) => {
  const { app } = await setup(t)
  const user = await register(app, 'Karl')

  t.test('ends every other session, and keeps the current one on request', async (t) => {
    const a = await login(app, 'Karl', user.password)
    const b = await login(app, 'Karl', user.password)
    const response = await app.inject({
      method: 'POST',
      url: '/users/me/password',
      headers: bearer(a.access_token),
      payload: { current_password: user.password, new_password: 'a brand new passphrase', keep_current_session: true }
    })
    t.equal(response.statusCode, 204)
    t.equal((await refresh(app, b.refresh_token)).statusCode, 400, 'other session ended')
    t.equal((await refresh(app, a.refresh_token)).statusCode, 200, 'current session kept')
    const old = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'Karl', password: user.password } })
    t.equal(old.statusCode, 400, 'old password no longer works')
    await login(app, 'Karl', 'a brand new passphrase')
  })

  t.test('ends the current session too by default', async (t) => {
    const a = await login(app, 'Karl', 'a brand new passphrase')
    const response = await app.inject({
      method: 'POST',
      url: '/users/me/password',
      headers: bearer(a.access_token),
      payload: { current_password: 'a brand new passphrase', new_password: 'yet another passphrase' }
    })
    t.equal(response.statusCode, 204)
    t.equal((await refresh(app, a.refresh_token)).statusCode, 400)
  })

  t.test('a wrong current password changes nothing', async (t) => {
    const a = await login(app, 'Karl', 'yet another passphrase')
    const response = await app.inject({
      method: 'POST',
      url: '/users/me/password',
      headers: bearer(a.access_token),
      payload: { current_password: 'not it at all', new_password: 'hijacked passphrase' }
    })
    t.equal(response.statusCode, 400)
    t.equal(response.json().error, 'invalid_grant')
    t.equal((await refresh(app, a.refresh_token)).statusCode, 200, 'session intact')
    await login(app, 'Karl', 'yet another passphrase')
  })
})
