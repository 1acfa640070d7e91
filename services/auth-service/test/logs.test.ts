import t from 'tap'
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
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

t.test('DPoP: no proof, and no token bound by one, reaches the logs, whether accepted, replayed or refused', async (t) => {
  const { app, logs, clock } = await setup(t, { LOG_LEVEL: 'trace', DPOP_NONCE: 'required' })
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const jwk = await exportJWK(publicKey)
  const proof = async (nonce?: string): Promise<string> => await new SignJWT({ htm: 'POST', htu: `${app.config.ISSUER}/oauth/token`, iat: Math.floor(clock.now() / 1000), jti: randomUUID(), ...(nonce === undefined ? {} : { nonce }) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(privateKey)
  const user = await register(app, 'Eve', 'secret passphrase 1234')
  const send = async (payload: Record<string, string>, dpop: string) => await app.inject({ method: 'POST', url: '/oauth/token', headers: { dpop }, payload })
  const unproven = await proof()
  const nonce = (await send({ grant_type: 'password', username: 'Eve', password: user.password }, unproven)).headers['dpop-nonce'] as string
  const accepted = await proof(nonce)
  const tokens = (await send({ grant_type: 'password', username: 'Eve', password: user.password }, accepted)).json<{ refresh_token: string, access_token: string }>()
  await send({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, accepted) // replayed proof
  await send({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, `${accepted.slice(0, -8)}AAAAAAAA`) // bad signature
  await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token } }) // no proof: theft

  const text = logs()
  t.match(text, /refresh\.reuse_detected/, 'the theft was logged')
  for (const secret of [unproven, accepted, tokens.refresh_token, tokens.access_token]) {
    for (const part of secret.split('.')) t.notOk(text.includes(part), `log does not contain ${part.slice(0, 12)}…`)
  }
})

t.test('cookie mode: neither the Set-Cookie nor the Cookie header reaches the logs', async (t) => {
  const page = 'http://localhost:5173'
  const { app, logs } = await setup(t, {
    LOG_LEVEL: 'trace',
    CORS_ORIGINS: page,
    CLIENTS: JSON.stringify([{ client_id: 'baton', grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie' }])
  })
  const headers = { origin: page, 'x-baton-client': '1' }
  const cookieOf = (response: { cookies: Array<{ name: string, value: string }> }): string => response.cookies.find((cookie) => cookie.name === '__Host-baton-refresh-baton')?.value ?? ''
  const send = async (payload: Record<string, string>, cookie?: string, url = '/oauth/token') =>
    await app.inject({ method: 'POST', url, headers: { ...headers, ...(cookie === undefined ? {} : { cookie: `__Host-baton-refresh-baton=${cookie}` }) }, payload })
  const user = await register(app, 'Trudy')
  const first = cookieOf(await send({ grant_type: 'password', username: 'Trudy', password: user.password }))
  const second = cookieOf(await send({ grant_type: 'refresh_token' }, first))
  t.ok(first !== '' && second !== '', 'the cookies were set')
  await send({ grant_type: 'refresh_token' }, second)
  await send({ grant_type: 'refresh_token' }, first) // reuse: the family is revoked, the cookie cleared
  await send({ grant_type: 'refresh_token' }, second, '/oauth/token')
  await send({ token_type_hint: 'refresh_token' }, second, '/oauth/revoke')
  await app.inject({ method: 'POST', url: '/oauth/token', headers: { cookie: `__Host-baton-refresh-baton=${second}` }, payload: { grant_type: 'refresh_token' } }) // refused: CSRF

  const text = logs()
  t.match(text, /refresh\.reuse_detected/, 'the requests were logged')
  for (const secret of [first, second]) t.notOk(text.includes(secret), `log does not contain ${secret.slice(0, 12)}…`)
  t.notMatch(text, /__Host-baton-refresh/, 'nor the cookie\'s name: no cookie header is logged at all')
})
