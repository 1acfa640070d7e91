import t from 'tap'
import { setup, register, login, refresh, bearer, decodeJwt } from './helper.js'

const CLIENTS = JSON.stringify([
  { client_id: 'mobile', grant_types: ['password', 'refresh_token'] },
  { client_id: 'api-gateway', client_secret: 'gateway-secret-0123456789', grant_types: ['client_credentials'], scope: 'introspect', introspection: true },
  { client_id: 'reporting', client_secret: 'reporting-secret-0123456789', grant_types: ['client_credentials'], scope: 'reports:read' }
])
const gateway = { authorization: `Basic ${Buffer.from('api-gateway:gateway-secret-0123456789').toString('base64')}` }
const reporting = { authorization: `Basic ${Buffer.from('reporting:reporting-secret-0123456789').toString('base64')}` }

t.test('revocation (RFC 7009) and introspection (RFC 7662)', async (t) => {
  const { app, redis, prefix, clock } = await setup(t, { CLIENTS, ACCESS_TOKEN_TTL: '10m' })
  const user = await register(app, 'Nina')

  const revoke = async (token: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) =>
    await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams({ token, ...extra }).toString() })
  const introspect = async (token: string, headers: Record<string, string> = gateway) =>
    await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams({ token }).toString() })

  t.test('revoking a refresh token ends its whole session', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    const rotated = (await refresh(app, tokens.refresh_token)).json<{ refresh_token: string, access_token: string }>()
    const response = await revoke(rotated.refresh_token, { token_type_hint: 'refresh_token' })
    t.equal(response.statusCode, 200)
    t.same(response.json(), {})
    t.equal(response.headers['cache-control'], 'no-store')
    t.equal((await refresh(app, rotated.refresh_token)).statusCode, 400, 'refresh token dead')
    t.equal((await app.inject({ method: 'GET', url: '/sessions', headers: bearer(rotated.access_token) })).statusCode, 401, 'its access tokens are refused where revocation is checked')
    t.same((await introspect(rotated.access_token)).json(), { active: false })
  })

  t.test('revoking an access token puts it on a list that expires with it', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    const other = (await refresh(app, tokens.refresh_token)).json<{ access_token: string }>()
    const response = await revoke(tokens.access_token, { token_type_hint: 'access_token' })
    t.equal(response.statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 401, 'the revoked token is refused')
    t.equal((await app.inject({ method: 'GET', url: '/sessions', headers: bearer(other.access_token) })).statusCode, 200, 'the session and its other tokens live on')
    const { sub, jti, exp } = decodeJwt(tokens.access_token).payload as { sub: string, jti: string, exp: number }
    const ttl = await redis.pttl(`${prefix}user:{${sub}}:revoked-token:${jti}`)
    // Measured on the app's clock, which the test holds still; plus CLOCK_SKEW (5 s).
    const untilExpiry = exp * 1000 + 5000 - clock.now()
    t.ok(ttl > untilExpiry - 5000 && ttl <= untilExpiry, `entry lives until the token would have expired (${ttl} ms of ${untilExpiry} ms)`)
  })

  t.test('unknown, malformed, expired and already revoked tokens still get 200', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    await revoke(tokens.refresh_token)
    for (const token of [tokens.refresh_token, 'not-a-token', 'a.b.c', tokens.access_token.slice(0, -4) + 'AAAA', 'x'.repeat(108)]) {
      const response = await revoke(token)
      t.equal(response.statusCode, 200, token.slice(0, 20))
    }
    const missing = await app.inject({ method: 'POST', url: '/oauth/revoke', payload: {} })
    t.equal(missing.statusCode, 400)
    t.equal(missing.json().error, 'invalid_request')
  })

  t.test('a client can revoke only its own tokens', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    const byOther = await revoke(tokens.refresh_token, { client_id: 'mobile' })
    t.equal(byOther.statusCode, 400)
    t.equal(byOther.json().error, 'unauthorized_client')
    t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'nothing was revoked')
  })

  t.test('refresh tokens are bound to the client that got them', async (t) => {
    const mobile = await login(app, 'Nina', user.password, { client_id: 'mobile' })
    const stolen = await refresh(app, mobile.refresh_token)
    t.equal(stolen.statusCode, 400, 'the built-in client cannot use the mobile client\'s token')
    t.equal(stolen.json().error, 'invalid_grant')
    t.equal((await refresh(app, mobile.refresh_token, { client_id: 'mobile' })).statusCode, 200, 'the mobile client can')
  })

  t.test('introspection reports live tokens with their claims', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    const access = await introspect(tokens.access_token)
    t.equal(access.statusCode, 200)
    t.equal(access.headers['cache-control'], 'no-store')
    const claims = decodeJwt(tokens.access_token).payload
    t.same(access.json(), {
      active: true,
      token_type: 'Bearer',
      sub: user.id,
      scope: 'profile',
      client_id: 'baton',
      username: 'Nina',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      sid: claims.sid,
      iss: 'http://127.0.0.1:3001',
      aud: 'baton-api'
    })
    const refreshView = (await introspect(tokens.refresh_token)).json()
    t.match(refreshView, { active: true, token_type: 'refresh_token', sub: user.id, client_id: 'baton', sid: claims.sid, scope: 'profile' })
    t.ok((refreshView.exp as number) > (claims.exp as number), 'the refresh token outlives the access token')

    const service = await app.inject({ method: 'POST', url: '/oauth/token', headers: gateway, payload: { grant_type: 'client_credentials' } })
    const serviceToken = service.json<{ access_token: string }>().access_token
    t.match((await introspect(serviceToken)).json(), { active: true, sub: 'api-gateway', client_id: 'api-gateway' })
    t.equal((await introspect(serviceToken)).json().sid, undefined)
  })

  t.test('introspection says inactive for rotated, revoked, unknown and foreign tokens', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    await refresh(app, tokens.refresh_token)
    t.same((await introspect(tokens.refresh_token)).json(), { active: false }, 'a rotated refresh token')
    const { privateKey } = await import('node:crypto').then(({ generateKeyPairSync }) => generateKeyPairSync('ed25519'))
    const { createSigner } = await import('fast-jwt')
    const { header, payload } = decodeJwt(tokens.access_token)
    const foreign = createSigner({ key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), algorithm: 'EdDSA', header: { alg: 'EdDSA', typ: 'at+jwt', kid: header.kid as string } })(payload)
    t.same((await introspect(foreign)).json(), { active: false }, 'signed by someone else with our kid')
    for (const token of ['garbage', 'a.b.c', 'x'.repeat(108)]) {
      t.same((await introspect(token)).json(), { active: false }, token.slice(0, 10))
    }
  })

  t.test('introspection is for authenticated confidential clients only', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    for (const [name, headers] of [['no client', {}], ['public client', { authorization: `Basic ${Buffer.from('mobile:').toString('base64')}` }], ['wrong secret', { authorization: `Basic ${Buffer.from('api-gateway:nope-nope-nope-nope').toString('base64')}` }]] as const) {
      const response = await introspect(tokens.access_token, headers)
      t.equal(response.statusCode, 401, name)
      t.equal(response.json().error, 'invalid_client', name)
    }
  })

  t.test('a confidential client not marked for introspection learns nothing from it', async (t) => {
    const tokens = await login(app, 'Nina', user.password)
    const service = (await app.inject({ method: 'POST', url: '/oauth/token', headers: reporting, payload: { grant_type: 'client_credentials' } })).json<{ access_token: string }>()
    t.ok(service.access_token, 'its credentials are good: it gets tokens of its own')
    for (const token of [tokens.access_token, tokens.refresh_token, 'not-a-token', service.access_token]) {
      for (const [method, response] of [
        ['client_secret_basic', await introspect(token, reporting)],
        ['client_secret_post', await app.inject({ method: 'POST', url: '/oauth/introspect', payload: { token, client_id: 'reporting', client_secret: 'reporting-secret-0123456789' } })]
      ] as const) {
        t.equal(response.statusCode, 403, method)
        t.same(response.json(), { error: 'unauthorized_client', error_description: 'this client may not introspect tokens' }, `${method}: an error, and no claim of any token`)
        t.equal(response.headers['cache-control'], 'no-store')
        t.notOk(response.headers['www-authenticate'], 'no challenge: its authentication succeeded, its permission is what is missing')
      }
    }
    t.match((await introspect(tokens.access_token)).json(), { active: true, sub: user.id }, 'the client marked for introspection still gets the answer')
  })

  t.test('a client_credentials token cannot act on user sessions', async (t) => {
    const service = await app.inject({ method: 'POST', url: '/oauth/token', headers: gateway, payload: { grant_type: 'client_credentials' } })
    const response = await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(service.json<{ access_token: string }>().access_token) })
    t.equal(response.statusCode, 401)
  })
})
