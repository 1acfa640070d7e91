import t from 'tap'
import { setup, register, login, refresh, bearer } from './helper.js'

t.test('no token, password or cookie ever reaches the logs', async (t) => {
  const { app, logs } = await setup(t, { LOG_LEVEL: 'trace' })
  const password = 'secret passphrase 1234'
  const user = await register(app, 'Mallory', password)
  const tokens = await login(app, 'Mallory', user.password)
  const rotated = (await refresh(app, tokens.refresh_token)).json<{ refresh_token: string, access_token: string }>()
  await refresh(app, rotated.refresh_token)
  await refresh(app, tokens.refresh_token) // reuse: logged as an audit event
  await app.inject({ method: 'GET', url: '/sessions', headers: { ...bearer(rotated.access_token), cookie: 'session=cookie-value-xyz' } })
  await app.inject({ method: 'GET', url: `/sessions?access_token=${rotated.access_token}` })
  await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'Mallory', password: 'wrong passphrase 5678' } })
  await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/json' }, payload: `{"grant_type":"password","password":"${password}"` })
  await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: 'Basic YmF0b246c2VjcmV0LXh5eg==' }, payload: { grant_type: 'password' } })

  const text = logs()
  t.ok(text.split('\n').length > 10, 'requests were logged')
  t.match(text, /refresh\.reuse_detected/, 'the audit event is there')
  for (const secret of [password, 'wrong passphrase 5678', tokens.refresh_token, tokens.access_token, rotated.refresh_token, rotated.access_token, 'cookie-value-xyz', 'YmF0b246c2VjcmV0LXh5eg', rotated.access_token.split('.')[2]!]) {
    t.notOk(text.includes(secret), `log does not contain ${secret.slice(0, 12)}…`)
  }
})
