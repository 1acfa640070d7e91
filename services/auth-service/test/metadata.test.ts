import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { login, refresh, register, setup } from './helper.js'

// RFC 8414 metadata must list what this deployment accepts, no more and no
// less: each case below sets clients up differently, states the whole
// document, and checks the claims that changed against the endpoints.

const SECRET = 'a-client-secret-0123456789'
const basic = (id: string, secret: string): { authorization: string } => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` })

async function metadata (app: FastifyInstance, url = '/.well-known/oauth-authorization-server'): Promise<Record<string, unknown>> {
  const response = await app.inject({ method: 'GET', url })
  if (response.statusCode !== 200) throw new Error(`metadata: ${response.statusCode} ${response.body}`)
  return response.json<Record<string, unknown>>()
}

async function token (app: FastifyInstance, payload: Record<string, string>, headers: Record<string, string> = {}): Promise<{ statusCode: number, body: Record<string, unknown> }> {
  const response = await app.inject({ method: 'POST', url: '/oauth/token', payload, headers })
  return { statusCode: response.statusCode, body: response.json<Record<string, unknown>>() }
}

t.test('the default deployment: only the built-in public client', async (t) => {
  const { app } = await setup(t)
  const issuer = app.config.ISSUER
  const response = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^application\/json/)
  t.equal(response.headers['cache-control'], 'public, max-age=3600', 'clients and proxies may cache it')
  t.same(response.json(), {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    grant_types_supported: ['password', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    scopes_supported: ['profile'],
    response_types_supported: [],
    service_documentation: `${issuer}/docs`,
    dpop_signing_alg_values_supported: ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256']
  }, 'no introspection endpoint: no client could authenticate to it')

  const user = await register(app)
  const tokens = await login(app, user.username, user.password)
  t.equal(tokens.scope, 'profile', 'password grant, no client authentication ("none")')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'refresh_token grant')
  t.match(await token(app, { grant_type: 'client_credentials' }), { statusCode: 400, body: { error: 'unauthorized_client' } }, 'client_credentials is not listed, and nobody may use it')
  t.match(await token(app, { grant_type: 'client_credentials' }, basic('anyone', SECRET)), { statusCode: 401, body: { error: 'invalid_client' } }, 'client_secret_basic is not listed: no client has a secret')
  const introspection = await app.inject({ method: 'POST', url: '/oauth/introspect', payload: { token: tokens.access_token } })
  t.equal(introspection.statusCode, 401, 'and introspection, not listed, admits no one')
  t.equal((await app.inject({ method: 'GET', url: '/authorize' })).statusCode, 404, 'response_types_supported is empty: there is no authorization endpoint')
  t.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 200, 'service_documentation is served')
})

t.test('with confidential clients: client_credentials, secrets and introspection appear', async (t) => {
  const { app } = await setup(t, {
    DEFAULT_SCOPES: 'profile email',
    CLIENTS: JSON.stringify([
      { client_id: 'reporting', client_secret: SECRET, grant_types: ['client_credentials'], scope: 'reports:read audit:write' },
      { client_id: 'gateway', client_secret: SECRET, grant_types: [], introspection: true },
      { client_id: 'mobile', grant_types: ['password', 'refresh_token'], scope: 'profile' }
    ])
  })
  const issuer = app.config.ISSUER
  t.same(await metadata(app), {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    grant_types_supported: ['password', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
    revocation_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    scopes_supported: ['audit:write', 'email', 'profile', 'reports:read'],
    response_types_supported: [],
    service_documentation: `${issuer}/docs`,
    dpop_signing_alg_values_supported: ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256']
  })

  const viaBasic = await token(app, { grant_type: 'client_credentials', scope: 'audit:write' }, basic('reporting', SECRET))
  t.match(viaBasic, { statusCode: 200, body: { scope: 'audit:write' } }, 'client_credentials with client_secret_basic; a client scope is grantable')
  t.match(await token(app, { grant_type: 'client_credentials', client_id: 'reporting', client_secret: SECRET }), { statusCode: 200, body: { scope: 'reports:read audit:write' } }, 'and with client_secret_post')
  for (const auth of [{ headers: basic('gateway', SECRET), payload: {} }, { headers: {}, payload: { client_id: 'gateway', client_secret: SECRET } }]) {
    const response = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: auth.headers, payload: { token: String(viaBasic.body.access_token), ...auth.payload } })
    t.match(response.json(), { active: true, client_id: 'reporting' }, 'introspection with each listed method, by the client marked for it')
  }
  const unmarked = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: basic('reporting', SECRET), payload: { token: String(viaBasic.body.access_token) } })
  t.equal(unmarked.statusCode, 403, 'a confidential client not marked for introspection may not use it')
  const user = await register(app)
  t.match(await token(app, { grant_type: 'password', username: user.username, password: user.password, client_id: 'mobile' }), { statusCode: 200, body: { scope: 'profile' } }, 'a public client with a bare client_id ("none")')
  const userScopes = (await login(app, user.username, user.password)).scope
  t.equal(userScopes, 'profile email', 'DEFAULT_SCOPES are what users are granted')
})

t.test('no public client: "none" is not listed and not accepted', async (t) => {
  const { app } = await setup(t, {
    CLIENTS: JSON.stringify([{ client_id: 'baton', client_secret: SECRET, grant_types: ['password', 'refresh_token'] }])
  })
  const document = await metadata(app)
  t.same(document.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post'])
  t.same(document.revocation_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post'])
  t.same(document.grant_types_supported, ['password', 'refresh_token'])
  t.notOk('introspection_endpoint' in document, 'no client is marked for introspection: the endpoint is not listed')

  const user = await register(app)
  const credentials = { grant_type: 'password', username: user.username, password: user.password }
  t.match(await token(app, credentials), { statusCode: 401, body: { error: 'invalid_client' } }, 'without authentication: refused')
  t.match(await token(app, { ...credentials, client_id: 'baton' }), { statusCode: 401, body: { error: 'invalid_client' } }, 'with a bare client_id: refused')
  t.equal((await token(app, credentials, basic('baton', SECRET))).statusCode, 200, 'with client_secret_basic: accepted')
  const revocation = await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: 'anything' } })
  t.equal(revocation.statusCode, 401, 'revocation without authentication: refused as well')
})

t.test('a grant no client may use is not listed', async (t) => {
  const { app } = await setup(t, { CLIENTS: JSON.stringify([{ client_id: 'baton', grant_types: ['password'] }]) })
  t.same((await metadata(app)).grant_types_supported, ['password'])
  const user = await register(app)
  const tokens = await login(app, user.username, user.password)
  const refreshed = await refresh(app, tokens.refresh_token)
  t.match({ statusCode: refreshed.statusCode, body: refreshed.json() }, { statusCode: 400, body: { error: 'unauthorized_client' } }, 'refresh_token is really refused')
})

t.test('an issuer with a path: endpoints under it, metadata also at the RFC 8414 §3.1 location', async (t) => {
  const { app } = await setup(t, { ISSUER: 'https://auth.example.com/tenant-a/' })
  const document = await metadata(app)
  t.match(document, {
    issuer: 'https://auth.example.com/tenant-a',
    token_endpoint: 'https://auth.example.com/tenant-a/oauth/token',
    jwks_uri: 'https://auth.example.com/tenant-a/.well-known/jwks.json'
  })
  t.same(await metadata(app, '/.well-known/oauth-authorization-server/tenant-a'), document, 'the same document where a client looks for it')
})

t.test('DPoP: the algorithms listed are the ones the token endpoint accepts, for proofs made out to the token_endpoint listed', async (t) => {
  const { app } = await setup(t, { ISSUER: 'https://auth.example.com/tenant-a', DPOP_SIGNING_ALGS: 'ES256' })
  const document = await metadata(app)
  t.same(document.dpop_signing_alg_values_supported, ['ES256'])
  const user = await register(app)
  const answers: Record<string, unknown> = {}
  for (const alg of ['ES256', 'EdDSA', 'ES384'] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg)
    const proof = await new SignJWT({ htm: 'POST', htu: document.token_endpoint, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
      .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk: await exportJWK(publicKey) }).sign(privateKey)
    const response = await token(app, { grant_type: 'password', username: user.username, password: user.password }, { dpop: proof })
    answers[alg] = response.body.token_type ?? response.body.error
  }
  t.same(answers, { ES256: 'DPoP', EdDSA: 'invalid_dpop_proof', ES384: 'invalid_dpop_proof' }, 'a listed algorithm binds the tokens; the others are refused')
})
