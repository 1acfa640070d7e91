import t, { type Test } from 'tap'
import * as oauth from 'oauth4webapi'
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { freePort } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { sharedRedis } from './helper.js'

// Baton driven by clients other people wrote: oauth4webapi (a widely used,
// standards-conforming OAuth 2 client) for discovery and every token-endpoint,
// revocation and introspection flow, and jose for verifying access tokens
// from the published key set, all over a real socket. Nothing here builds an
// OAuth request by hand. Along the way it records which grants and client
// authentication methods really worked, and at the end holds the discovery
// document to exactly that.

const AUDIENCE = 'baton-api'
const PASSWORD = 'correct horse battery staple'
const REPORTING = { client_id: 'reporting', secret: 'reporting-secret-0123456789' }
const GATEWAY = { client_id: 'gateway', secret: 'gateway-secret-0123456789' }

t.test('Baton interoperates with oauth4webapi and jose', async (t) => {
  const redis = await sharedRedis()
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const app = await buildApp(loadConfig({
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `interop${process.pid}:`,
    ISSUER: issuer,
    AUDIENCE,
    LOG_LEVEL: 'silent',
    // No grace: a rotated refresh token is dead at once, so rotation is visible.
    REFRESH_REUSE_GRACE: '0',
    CLIENTS: JSON.stringify([
      { client_id: REPORTING.client_id, client_secret: REPORTING.secret, grant_types: ['client_credentials'], scope: 'reports:read', introspection: true },
      { client_id: GATEWAY.client_id, client_secret: GATEWAY.secret, grant_types: ['password', 'refresh_token'] }
    ])
  }))
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port })

  // Plain http on the loopback: the libraries insist on https unless told.
  const insecure = { [oauth.allowInsecureRequests]: true } as const
  const publicClient: oauth.Client = { client_id: 'baton' }
  const reporting: oauth.Client = { client_id: REPORTING.client_id }
  const gateway: oauth.Client = { client_id: GATEWAY.client_id }

  const worked = {
    grants: new Set<string>(),
    tokenAuth: new Set<string>(),
    revocationAuth: new Set<string>(),
    introspectionAuth: new Set<string>(),
    scopes: new Set<string>()
  }

  // Registration is Baton's own API, not OAuth: a plain request.
  const registered = await fetch(`${issuer}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'ada', password: PASSWORD })
  })
  t.equal(registered.status, 201)
  const { id: userId } = await registered.json() as { id: string }

  const issuerUrl = new URL(issuer)
  const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...insecure }))

  t.test('discovery (RFC 8414)', async (t) => {
    t.equal(as.issuer, issuer, 'the issuer matches the one asked about')
    t.equal(as.token_endpoint, `${issuer}/oauth/token`)
    t.equal(as.revocation_endpoint, `${issuer}/oauth/revoke`)
    t.equal(as.introspection_endpoint, `${issuer}/oauth/introspect`)
    t.equal(as.jwks_uri, `${issuer}/.well-known/jwks.json`)
    t.same(as.response_types_supported, [], 'no authorization endpoint, so no response types')
    t.notOk(as.authorization_endpoint)
  })

  const jwks = createRemoteJWKSet(new URL(as.jwks_uri!))
  async function verifyAccessToken (t: Test, token: string): Promise<JWTPayload> {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['EdDSA', 'ES256'] })
    t.type(protectedHeader.kid, 'string', 'jose verified it against the jwks_uri; the header names its key')
    for (const scope of String(payload.scope).split(' ')) worked.scopes.add(scope)
    return payload
  }

  async function passwordGrant (client: oauth.Client, auth: oauth.ClientAuth, scope?: string): Promise<oauth.TokenEndpointResponse> {
    const response = await oauth.genericTokenEndpointRequest(as, client, auth, 'password', { username: 'ada', password: PASSWORD, ...(scope === undefined ? {} : { scope }) }, insecure)
    const tokens = await oauth.processGenericTokenEndpointResponse(as, client, response)
    worked.grants.add('password')
    return tokens
  }

  async function introspect (token: string, auth: 'client_secret_basic' | 'client_secret_post'): Promise<oauth.IntrospectionResponse> {
    const clientAuth = auth === 'client_secret_basic' ? oauth.ClientSecretBasic(REPORTING.secret) : oauth.ClientSecretPost(REPORTING.secret)
    const result = await oauth.processIntrospectionResponse(as, reporting, await oauth.introspectionRequest(as, reporting, clientAuth, token, insecure))
    worked.introspectionAuth.add(auth)
    return result
  }

  let login: oauth.TokenEndpointResponse

  t.test('password grant, public client (generic grant request, no client authentication)', async (t) => {
    login = await passwordGrant(publicClient, oauth.None())
    worked.tokenAuth.add('none')
    t.equal(login.token_type, 'bearer')
    t.type(login.refresh_token, 'string')
    t.equal(login.scope, 'profile')
    t.ok(login.expires_in !== undefined && login.expires_in > 0)

    const claims = await verifyAccessToken(t, login.access_token)
    t.match(claims, { sub: userId, client_id: 'baton', scope: 'profile', sid: String, jti: String, iat: Number, exp: Number, username: 'ada' })

    // The same token through a second library's RFC 9068 resource-server check.
    const request = new Request(`${issuer}/anything`, { headers: { authorization: `Bearer ${login.access_token}` } })
    const validated = await oauth.validateJwtAccessToken(as, request, AUDIENCE, { ...insecure, signingAlgorithms: ['EdDSA', 'ES256'] })
    t.equal(validated.sub, userId, 'oauth4webapi\'s RFC 9068 validation accepts it too')
  })

  t.test('password grant, confidential client with client_secret_post', async (t) => {
    const tokens = await passwordGrant(gateway, oauth.ClientSecretPost(GATEWAY.secret))
    worked.tokenAuth.add('client_secret_post')
    t.match(await verifyAccessToken(t, tokens.access_token), { sub: userId, client_id: GATEWAY.client_id })
  })

  t.test('refresh grant: rotation is visible, and the spent token is refused', async (t) => {
    const first = await passwordGrant(gateway, oauth.ClientSecretBasic(GATEWAY.secret))
    worked.tokenAuth.add('client_secret_basic')
    const refreshed = await oauth.processRefreshTokenResponse(as, gateway,
      await oauth.refreshTokenGrantRequest(as, gateway, oauth.ClientSecretBasic(GATEWAY.secret), first.refresh_token!, insecure))
    worked.grants.add('refresh_token')
    t.type(refreshed.refresh_token, 'string')
    t.not(refreshed.refresh_token, first.refresh_token, 'a new refresh token comes back')
    t.not(refreshed.access_token, first.access_token)
    const before = await verifyAccessToken(t, first.access_token)
    const after = await verifyAccessToken(t, refreshed.access_token)
    t.equal(after.sid, before.sid, 'the same session goes on')

    const replay = oauth.processRefreshTokenResponse(as, gateway,
      await oauth.refreshTokenGrantRequest(as, gateway, oauth.ClientSecretBasic(GATEWAY.secret), first.refresh_token!, insecure))
    const refused = await replay.catch((error: unknown) => error)
    t.type(refused, oauth.ResponseBodyError, 'the spent refresh token is refused as an RFC 6749 error')
    t.match(refused, { error: 'invalid_grant', status: 400 })
  })

  t.test('refresh grant, public client', async (t) => {
    const refreshed = await oauth.processRefreshTokenResponse(as, publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), login.refresh_token!, insecure))
    t.not(refreshed.refresh_token, login.refresh_token)
    login = refreshed
  })

  t.test('client_credentials with client_secret_basic and client_secret_post', async (t) => {
    for (const [method, auth] of [['client_secret_basic', oauth.ClientSecretBasic(REPORTING.secret)], ['client_secret_post', oauth.ClientSecretPost(REPORTING.secret)]] as const) {
      const tokens = await oauth.processClientCredentialsResponse(as, reporting,
        await oauth.clientCredentialsGrantRequest(as, reporting, auth, { scope: 'reports:read' }, insecure))
      worked.grants.add('client_credentials')
      worked.tokenAuth.add(method)
      t.equal(tokens.token_type, 'bearer', method)
      t.equal(tokens.refresh_token, undefined, `${method}: no refresh token for a client`)
      const claims = await verifyAccessToken(t, tokens.access_token)
      t.match(claims, { sub: REPORTING.client_id, client_id: REPORTING.client_id, scope: 'reports:read' }, `${method}: the token speaks for the client`)
      t.notOk('sid' in claims, 'and belongs to no session')
    }

    const wrong = oauth.processClientCredentialsResponse(as, reporting,
      await oauth.clientCredentialsGrantRequest(as, reporting, oauth.ClientSecretBasic('not-the-secret-at-all'), {}, insecure))
    await t.rejects(wrong, oauth.WWWAuthenticateChallengeError, 'a wrong secret is a 401 challenge the library understands')
  })

  t.test('introspection (RFC 7662) by a confidential client', async (t) => {
    for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
      const access = await introspect(login.access_token, method)
      t.match(access, {
        active: true,
        token_type: /^bearer$/i,
        sub: userId,
        username: 'ada',
        scope: 'profile',
        client_id: 'baton',
        iss: issuer,
        aud: AUDIENCE,
        exp: Number,
        iat: Number,
        jti: String,
        sid: String
      }, `${method}: a live access token`)
    }
    t.match(await introspect(login.refresh_token!, 'client_secret_basic'), { active: true, sub: userId, client_id: 'baton', scope: 'profile', exp: Number }, 'a live refresh token')
    t.same(await introspect('not-a-token', 'client_secret_basic'), { active: false }, 'an unknown token is inactive, and nothing more is said')

    const anonymous = oauth.processIntrospectionResponse(as, publicClient, await oauth.introspectionRequest(as, publicClient, oauth.None(), login.access_token, insecure))
    await t.rejects(anonymous, oauth.WWWAuthenticateChallengeError, 'a public client may not introspect')
  })

  t.test('revocation (RFC 7009)', async (t) => {
    const session = await passwordGrant(publicClient, oauth.None())
    t.equal(await introspect(session.access_token, 'client_secret_basic').then((result) => result.active), true)

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, publicClient, oauth.None(), session.refresh_token!, {
      ...insecure, additionalParameters: { token_type_hint: 'refresh_token' }
    }))
    worked.revocationAuth.add('none')
    t.same(await introspect(session.refresh_token!, 'client_secret_post'), { active: false }, 'the refresh token is dead')
    t.same(await introspect(session.access_token, 'client_secret_post'), { active: false }, 'and so is its session\'s access token, here')
    const refresh = oauth.processRefreshTokenResponse(as, publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), session.refresh_token!, insecure))
    t.match(await refresh.catch((error: unknown) => error), { error: 'invalid_grant', status: 400 }, 'and cannot be used')

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, publicClient, oauth.None(), 'no-such-token', insecure))
    t.pass('an unknown token is "revoked" too: 200')

    // A confidential client revokes its own access token, each way it may authenticate.
    for (const [method, auth] of [['client_secret_basic', oauth.ClientSecretBasic(REPORTING.secret)], ['client_secret_post', oauth.ClientSecretPost(REPORTING.secret)]] as const) {
      const { access_token: accessToken } = await oauth.processClientCredentialsResponse(as, reporting,
        await oauth.clientCredentialsGrantRequest(as, reporting, auth, {}, insecure))
      t.equal((await introspect(accessToken, 'client_secret_basic')).active, true)
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, reporting, auth, accessToken, {
        ...insecure, additionalParameters: { token_type_hint: 'access_token' }
      }))
      worked.revocationAuth.add(method)
      t.same(await introspect(accessToken, 'client_secret_basic'), { active: false }, `${method}: the access token is revoked`)
    }

    // The gateway's session, revoked by the gateway with its secret in the body.
    const gatewaySession = await passwordGrant(gateway, oauth.ClientSecretPost(GATEWAY.secret))
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, gateway, oauth.ClientSecretPost(GATEWAY.secret), gatewaySession.refresh_token!, insecure))
    t.same(await introspect(gatewaySession.refresh_token!, 'client_secret_basic'), { active: false })
  })

  t.test('the discovery document lists exactly what worked', async (t) => {
    const sorted = (values: Iterable<string>): string[] => [...values].sort()
    t.same(sorted(as.grant_types_supported ?? []), sorted(worked.grants), 'grant_types_supported')
    t.same(sorted(as.token_endpoint_auth_methods_supported ?? []), sorted(worked.tokenAuth), 'token_endpoint_auth_methods_supported')
    t.same(sorted(as.revocation_endpoint_auth_methods_supported ?? []), sorted(worked.revocationAuth), 'revocation_endpoint_auth_methods_supported')
    t.same(sorted(as.introspection_endpoint_auth_methods_supported ?? []), sorted(worked.introspectionAuth), 'introspection_endpoint_auth_methods_supported')
    t.same(sorted(as.scopes_supported ?? []), sorted(worked.scopes), 'scopes_supported: each was granted in a verified token')
  })
})
