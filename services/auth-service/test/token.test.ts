import t from 'tap'
import { createPublicKey, verify as verifySignature } from 'node:crypto'
import { setup, register, login, decodeJwt } from './helper.js'

t.test('password grant', async (t) => {
  const { app } = await setup(t, { DEFAULT_SCOPES: 'profile reports:read', ACCESS_TOKEN_TTL: '10m' })
  const user = await register(app, 'Erin')

  t.test('JSON body: RFC 6749 success response, not cacheable', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'erin', password: user.password } })
    t.equal(response.statusCode, 200)
    t.equal(response.headers['cache-control'], 'no-store')
    t.equal(response.headers.pragma, 'no-cache')
    const body = response.json()
    t.same(Object.keys(body).sort(), ['access_token', 'device_token', 'expires_in', 'refresh_token', 'scope', 'token_type'])
    t.match(body.device_token, /^[A-Za-z0-9_-]{50}$/, 'a device token (rate limits), an extra parameter RFC 6749 §5.1 allows')
    t.equal(body.token_type, 'Bearer')
    t.equal(body.expires_in, 600)
    t.equal(body.scope, 'profile reports:read')
    t.match(body.refresh_token, /^[A-Za-z0-9_-]{108}$/, 'opaque, 81 random-and-MAC bytes')
  })

  t.test('form body works the same', async (t) => {
    const response = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'password', username: 'Erin', password: user.password }).toString()
    })
    t.equal(response.statusCode, 200)
    t.ok(response.json().access_token)
  })

  t.test('the access token is an EdDSA at+jwt with every RFC 9068 claim, verifiable with the JWKS', async (t) => {
    const tokens = await login(app, 'Erin', user.password)
    const { header, payload } = decodeJwt(tokens.access_token)
    t.equal(header.alg, 'EdDSA')
    t.equal(header.typ, 'at+jwt')
    t.type(header.kid, 'string')
    t.match(payload, {
      iss: 'http://127.0.0.1:3001',
      sub: user.id,
      aud: 'baton-api',
      client_id: 'baton',
      scope: 'profile reports:read',
      username: 'Erin',
      sid: /^[A-Za-z0-9_-]{22}$/,
      jti: /^[A-Za-z0-9_-]{22}$/
    })
    t.equal((payload.exp as number) - (payload.iat as number), 600)

    const jwks = (await app.inject('/.well-known/jwks.json')).json<{ keys: Array<Record<string, string>> }>()
    const jwk = jwks.keys.find((key) => key.kid === header.kid)
    t.ok(jwk, 'the signing key is published')
    const [h, p, s] = tokens.access_token.split('.')
    const valid = verifySignature(null, Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk as never, format: 'jwk' }), Buffer.from(s!, 'base64url'))
    t.ok(valid, 'the signature verifies against the published key')
  })

  t.test('scope may narrow, never widen', async (t) => {
    const narrow = await login(app, 'Erin', user.password, { scope: 'reports:read' })
    t.equal(narrow.scope, 'reports:read')
    t.equal(decodeJwt(narrow.access_token).payload.scope, 'reports:read')
    for (const scope of ['admin', 'profile admin', '', 'bad"scope']) {
      const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'Erin', password: user.password, scope } })
      t.equal(response.statusCode, 400, JSON.stringify(scope))
      t.equal(response.json().error, 'invalid_scope', JSON.stringify(scope))
    }
  })

  t.test('wrong password and unknown user get the same answer', async (t) => {
    const wrong = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'Erin', password: 'not the password' } })
    const unknown = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'nobody-here', password: 'not the password' } })
    t.equal(wrong.statusCode, 400)
    t.same(wrong.json(), { error: 'invalid_grant', error_description: 'invalid username or password' })
    t.equal(unknown.statusCode, wrong.statusCode)
    t.same(unknown.json(), wrong.json())
  })

  t.test('an unknown user costs a real password hash, like a wrong password', async (t) => {
    // Interleaved, so both paths see the same machine load; the no-hash path
    // (a malformed scope is refused before any lookup) is the floor. Without
    // the dummy verification an unknown user would cost about that floor.
    const time = async (payload: Record<string, string>): Promise<number> => {
      const start = process.hrtime.bigint()
      await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', password: 'not the password', ...payload } })
      return Number(process.hrtime.bigint() - start) / 1e6
    }
    const samples: Record<'wrong' | 'unknown' | 'floor', number[]> = { wrong: [], unknown: [], floor: [] }
    for (let i = 0; i < 9; i++) {
      samples.wrong.push(await time({ username: 'Erin' }))
      samples.unknown.push(await time({ username: 'nobody-here' }))
      samples.floor.push(await time({ username: 'Erin', scope: 'bad"scope' }))
    }
    const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!
    const [wrong, unknown, floor] = [median(samples.wrong), median(samples.unknown), median(samples.floor)]
    const summary = `medians: unknown ${unknown.toFixed(1)} ms, wrong ${wrong.toFixed(1)} ms, no hash ${floor.toFixed(1)} ms`
    // Compared above the floor: what a loaded machine adds to every request cancels out.
    t.ok(unknown - floor > (wrong - floor) / 2, `an unknown user pays for a hash (${summary})`)
    t.ok(unknown > wrong / 3 && unknown < wrong * 3, `about the time of a wrong password (${summary})`)
  })

  t.test('errors follow RFC 6749 §5.2', async (t) => {
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ['no grant_type', { username: 'Erin', password: user.password }, 400, 'invalid_request'],
      ['unknown grant_type', { grant_type: 'authorization_code', code: 'x' }, 400, 'unsupported_grant_type'],
      ['no password', { grant_type: 'password', username: 'Erin' }, 400, 'invalid_request'],
      ['non-string password', { grant_type: 'password', username: 'Erin', password: ['a'] }, 400, 'invalid_request'],
      ['operator injection', { grant_type: 'password', username: { $ne: '' }, password: user.password }, 400, 'invalid_request'],
      ['unknown client', { grant_type: 'password', username: 'Erin', password: user.password, client_id: 'nope' }, 401, 'invalid_client'],
      ['public client with a secret', { grant_type: 'password', username: 'Erin', password: user.password, client_id: 'baton', client_secret: 'x' }, 401, 'invalid_client'],
      ['client_credentials for the public client', { grant_type: 'client_credentials' }, 400, 'unauthorized_client']
    ]
    for (const [name, payload, status, error] of cases) {
      const response = await app.inject({ method: 'POST', url: '/oauth/token', payload })
      t.equal(response.statusCode, status, name)
      t.equal(response.json().error, error, name)
      t.type(response.json().error_description, 'string', name)
    }
    const duplicated = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=password&username=Erin&username=Mallory&password=x'
    })
    t.equal(duplicated.statusCode, 400, 'a repeated parameter is invalid_request')
    t.equal(duplicated.json().error, 'invalid_request')
  })
})

t.test('confidential clients and client_credentials', async (t) => {
  const clients = JSON.stringify([
    { client_id: 'reporting', client_secret: 'reporting-secret-0123456789', grant_types: ['client_credentials'], scope: 'reports:read reports:write' },
    { client_id: 'web', client_secret: 'web-secret-0123456789abcdef', grant_types: ['password', 'refresh_token'] }
  ])
  const { app } = await setup(t, { CLIENTS: clients })

  t.test('client_secret_basic gets a token for the client itself, with no refresh token', async (t) => {
    const response = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { authorization: `Basic ${Buffer.from('reporting:reporting-secret-0123456789').toString('base64')}` },
      payload: { grant_type: 'client_credentials', scope: 'reports:read' }
    })
    t.equal(response.statusCode, 200)
    const body = response.json()
    t.equal(body.refresh_token, undefined)
    t.equal(body.scope, 'reports:read')
    t.match(decodeJwt(body.access_token as string).payload, { sub: 'reporting', client_id: 'reporting', scope: 'reports:read' })
    t.equal(decodeJwt(body.access_token as string).payload.sid, undefined)
  })

  t.test('client_secret_post works; a wrong secret is invalid_client with a Basic challenge', async (t) => {
    const ok = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'client_credentials', client_id: 'reporting', client_secret: 'reporting-secret-0123456789' } })
    t.equal(ok.statusCode, 200)
    const bad = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'client_credentials', client_id: 'reporting', client_secret: 'wrong-secret-0123456789' } })
    t.equal(bad.statusCode, 401)
    t.equal(bad.json().error, 'invalid_client')
    t.match(bad.headers['www-authenticate'], /^Basic realm="baton"/)
  })

  t.test('a confidential client that sends only its client_id is invalid_client, and gets no token', async (t) => {
    const user = await register(app, 'Secretless')
    const attempts: Array<[string, Record<string, string>]> = [
      ['client_credentials', { grant_type: 'client_credentials', client_id: 'reporting' }],
      ['password grant', { grant_type: 'password', client_id: 'web', username: 'Secretless', password: user.password }]
    ]
    for (const [name, payload] of attempts) {
      const response = await app.inject({ method: 'POST', url: '/oauth/token', payload })
      t.equal(response.statusCode, 401, `${name}: 401`)
      t.equal(response.json().error, 'invalid_client', `${name}: invalid_client`)
      t.match(response.headers['www-authenticate'], /^Basic realm="baton"/, `${name}: a Basic challenge`)
      t.equal(response.json().access_token, undefined, `${name}: no access token`)
    }
    t.same(await app.auth.sessions.list(user.id), [], 'the password grant started no session')
  })
})
