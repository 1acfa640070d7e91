import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createStaticKeySource } from '@baton/verifier'
import { buildApp, loadConfig } from '../src/app.js'
import {
  AUDIENCE, BARE_CHALLENGES, claims, craftToken, generateTestKey, hmacInput, setup, signInput, signToken
} from './helper.js'

async function get (app: FastifyInstance, url: string, authorization?: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } })
}

/** One assertion per token: 401 invalid_token, described, with its challenge, not cached. */
function assertInvalidToken (t: Test, response: LightMyRequestResponse, name: string): void {
  t.match({
    status: response.statusCode,
    body: response.json(),
    challenge: response.headers['www-authenticate'],
    cacheControl: response.headers['cache-control']
  }, {
    status: 401,
    body: { error: /^invalid_token$/, error_description: String },
    challenge: /^Bearer realm="baton", error="invalid_token", error_description="[^"]+"$/,
    cacheControl: /^no-store$/
  }, name)
}

t.test('GET /me with a valid token answers who the token speaks for', async (t) => {
  const { app, keys, clock } = await setup(t)
  for (const key of keys) {
    const payload = claims({ sub: 'u-42', username: 'alice', scope: 'profile reports:read', sid: 's-7' }, clock.now())
    const response = await get(app, '/me', `Bearer ${signToken(key, payload)}`)
    t.equal(response.statusCode, 200, key.alg)
    t.same(response.json(), { sub: 'u-42', username: 'alice', scope: 'profile reports:read', sid: 's-7', exp: payload.exp })
    t.equal(response.headers['cache-control'], 'no-store')
    t.match(response.headers['content-type'], /^application\/json/)
  }
})

t.test('GET /me: username and sid are null when the token has none', async (t) => {
  const { app, keys, clock } = await setup(t)
  const payload = claims({ username: undefined, sid: undefined }, clock.now())
  const response = await get(app, '/me', `Bearer ${signToken(keys[0]!, payload)}`)
  t.equal(response.statusCode, 200)
  t.same(response.json(), { sub: 'user-1', username: null, scope: 'profile', sid: null, exp: payload.exp })
})

t.test('the response schema lets no other claim through', async (t) => {
  const { app, keys, clock } = await setup(t)
  const response = await get(app, '/me', `Bearer ${signToken(keys[0]!, claims({ secret: 'x', roles: ['admin'] }, clock.now()))}`)
  t.equal(response.statusCode, 200)
  t.same(Object.keys(response.json()).sort(), ['exp', 'scope', 'sid', 'sub', 'username'])
})

t.test('GET /reports needs the reports:read scope', async (t) => {
  const { app, keys, clock } = await setup(t)
  const allowed = await get(app, '/reports', `Bearer ${signToken(keys[1]!, claims({ scope: 'profile reports:read' }, clock.now()))}`)
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.headers['cache-control'], 'no-store')
  const body = allowed.json()
  t.ok(Array.isArray(body.reports) && body.reports.length > 0)
  for (const report of body.reports) t.same(Object.keys(report).sort(), ['created_at', 'id', 'period', 'title'])

  const refused = await get(app, '/reports', `Bearer ${signToken(keys[0]!, claims({ scope: 'profile' }, clock.now()))}`)
  t.equal(refused.statusCode, 403)
  t.same(refused.json(), { error: 'insufficient_scope', error_description: 'the access token lacks the scope reports:read' })
  t.equal(refused.headers['www-authenticate'],
    'Bearer realm="baton", error="insufficient_scope", error_description="the access token lacks the scope reports:read", scope="reports:read"')
  t.equal(refused.headers['cache-control'], 'no-store')
})

t.test('no credentials, or another scheme: 401 with bare Bearer and DPoP challenges', async (t) => {
  const { app } = await setup(t)
  for (const [url, authorization] of [['/me', undefined], ['/me', 'Basic dXNlcjpwYXNz'], ['/reports', undefined], ['/reports', 'Basic xxx'], ['/me', '']] as const) {
    const response = await get(app, url, authorization)
    t.equal(response.statusCode, 401, `${url} ${authorization}`)
    t.equal(response.headers['www-authenticate'], BARE_CHALLENGES, 'no error parameter (RFC 6750 §3.1), and the DPoP scheme offered (RFC 9449 §7.1)')
    t.same(response.json(), { error_description: 'an access token is required' })
    t.equal(response.headers['cache-control'], 'no-store')
  }
})

t.test('a malformed Bearer header: 400 invalid_request', async (t) => {
  const { app } = await setup(t)
  for (const authorization of ['Bearer', 'Bearer ', 'Bearer a b', 'bearer a b c', 'Bearer a,b', 'Bearer "token"']) {
    const response = await get(app, '/me', authorization)
    t.equal(response.statusCode, 400, JSON.stringify(authorization))
    t.same(response.json(), { error: 'invalid_request', error_description: 'the Authorization header must be Bearer followed by one token' })
    t.equal(response.headers['www-authenticate'], 'Bearer realm="baton", error="invalid_request", error_description="the Authorization header must be Bearer followed by one token"')
    t.equal(response.headers['cache-control'], 'no-store')
  }
})

t.test('lifetime: expired beyond the skew is refused, within it accepted', async (t) => {
  const { app, keys, clock } = await setup(t)
  const nowS = clock.now() / 1000
  const within = await get(app, '/me', `Bearer ${signToken(keys[0]!, claims({ iat: nowS - 905, exp: nowS - 4 }, clock.now()))}`)
  t.equal(within.statusCode, 200, 'expired 4 s ago, skew 5 s')
  const beyond = await get(app, '/me', `Bearer ${signToken(keys[0]!, claims({ iat: nowS - 906, exp: nowS - 6 }, clock.now()))}`)
  assertInvalidToken(t, beyond, 'expired 6 s ago')
  t.equal(beyond.json().error_description, 'the access token has expired')

  const token = signToken(keys[0]!, claims({}, clock.now()))
  t.equal((await get(app, '/me', `Bearer ${token}`)).statusCode, 200)
  clock.advance(906_000)
  assertInvalidToken(t, await get(app, '/me', `Bearer ${token}`), 'the same token once the clock passed exp + skew')
})

t.test('every bad token is a 401 invalid_token', async (t) => {
  const { app, keys, clock, jwks } = await setup(t)
  const [ed, ec] = keys as [typeof keys[0], typeof keys[0]]
  const now = clock.now()
  const payload = claims({}, now)
  const stranger = generateTestKey('EdDSA', ed.kid)

  const cases: Record<string, string> = {
    'wrong iss': signToken(ed, claims({ iss: 'https://evil.example' }, now)),
    'iss with a trailing slash': signToken(ed, claims({ iss: 'http://127.0.0.1:3001/' }, now)),
    'wrong aud': signToken(ed, claims({ aud: 'another-api' }, now)),
    'typ JWT': signToken(ed, payload, { typ: 'JWT' }),
    'typ missing': craftToken({ alg: 'EdDSA', kid: ed.kid }, payload, (input) => signInput(ed, input)),
    'alg none': craftToken({ alg: 'none', typ: 'at+jwt', kid: ed.kid }, payload, () => ''),
    'alg none with a signature': craftToken({ alg: 'none', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ed, input)),
    'HS256 keyed with the public key PEM': craftToken({ alg: 'HS256', typ: 'at+jwt', kid: ed.kid }, payload, (input) => hmacInput(ed.publicPem, input)),
    'HS256 keyed with the public JWK x': craftToken({ alg: 'HS256', typ: 'at+jwt', kid: ed.kid }, payload, (input) => hmacInput(String(ed.jwk.x), input)),
    'RS256 header': craftToken({ alg: 'RS256', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ed, input)),
    'ES256 header on the Ed25519 kid': craftToken({ alg: 'ES256', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ec, input)),
    'a known kid, signed by a key not in the JWKS': signToken(stranger, payload),
    'no kid': craftToken({ alg: 'EdDSA', typ: 'at+jwt' }, payload, (input) => signInput(ed, input)),
    'payload changed after signing': (() => {
      const [h, , s] = signToken(ed, payload).split('.')
      return `${h}.${Buffer.from(JSON.stringify({ ...payload, scope: 'reports:read' })).toString('base64url')}.${s}`
    })(),
    'signature of another token': (() => {
      const other = signToken(ed, claims({}, now)).split('.')[2]
      const [h, p] = signToken(ed, payload).split('.')
      return `${h}.${p}.${other}`
    })(),
    'not a JWT': 'abcdef',
    'five segments (JWE)': 'a.b.c.d.e'
  }
  for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti']) {
    cases[`missing ${claim}`] = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, claims({ [claim]: undefined }, now), (input) => signInput(ed, input))
  }
  for (const [name, token] of Object.entries(cases)) {
    assertInvalidToken(t, await get(app, '/me', `Bearer ${token}`), name)
  }
  t.equal(jwks.hits(), 1, 'none of these made the service fetch the key set again (all within the refetch interval)')
})

t.test('typ compares case-insensitively and may carry application/', async (t) => {
  const { app, keys, clock } = await setup(t)
  for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/At+JWT']) {
    const response = await get(app, '/me', `Bearer ${signToken(keys[0]!, claims({}, clock.now()), { typ })}`)
    t.equal(response.statusCode, 200, typ)
  }
})

t.test('probes and metrics', async (t) => {
  const { app, keys, clock } = await setup(t)
  t.same((await get(app, '/healthz')).json(), { status: 'ok' })
  const ready = await get(app, '/readyz')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ok', checks: { keys: 'ok' } })

  await get(app, '/me', `Bearer ${signToken(keys[0]!, claims({}, clock.now()))}`)
  await get(app, '/me')
  const metrics = await get(app, '/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.body, /baton_resource_http_request_duration_seconds_count\{method="GET",route="\/me",status="200"\} 1/)
  t.match(metrics.body, /baton_verify_failures_total\{reason="missing"\} 1/)
})

t.test('METRICS_PORT and METRICS_TOKEN: metrics on a port of their own, behind a bearer secret', async (t) => {
  const secret = 'resource-scrape-secret-0123456789'
  const { app, keys, clock } = await setup(t, { METRICS_PORT: '0', METRICS_TOKEN: secret })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const main = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const metrics = `http://127.0.0.1:${app.metricsAddress()!.port}`
  const token = signToken(keys[0]!, claims({}, clock.now()))
  t.equal((await fetch(`${main}/me`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
  t.equal((await fetch(`${main}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).status, 404, 'not on the public port')
  t.equal((await fetch(`${metrics}/metrics`)).status, 401, 'not without the secret')
  t.equal((await fetch(`${metrics}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'an access token is no metrics secret')
  const scraped = await fetch(`${metrics}/metrics`, { headers: { authorization: `Bearer ${secret}` } })
  t.equal(scraped.status, 200)
  t.match(await scraped.text(), /baton_resource_http_request_duration_seconds_count\{method="GET",route="\/me",status="200"\} 1/)
})

t.test('a token never gets into the response of a failure', async (t) => {
  const { app, keys, clock } = await setup(t)
  const token = signToken(keys[0]!, claims({ aud: AUDIENCE + 'x' }, clock.now()))
  const response = await get(app, '/me', `Bearer ${token}`)
  t.equal(response.statusCode, 401)
  t.notMatch(response.body + JSON.stringify(response.headers), token.split('.')[1]!)
})

t.test('deps.keySource replaces the JWKS: nothing is fetched, readiness follows the source', async (t) => {
  const key = generateTestKey('EdDSA')
  const published: Array<{ kid: string, publicKey: string }> = []
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', JWKS_URL: 'http://127.0.0.1:9/unused' }), {
    keySource: createStaticKeySource(() => published)
  })
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/readyz')).statusCode, 503)
  published.push({ kid: key.kid, publicKey: key.publicPem })
  t.equal((await app.inject('/readyz')).statusCode, 200)
  t.equal((await get(app, '/me', `Bearer ${signToken(key, claims())}`)).statusCode, 200)
})
