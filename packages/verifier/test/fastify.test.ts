// The Fastify adapter: what a Fastify app answers, with Baton's error
// handler or none at all, and what the plugin adds to the app.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import { countVerifyFailures, errorHandlerPlugin, metricsPlugin } from '@baton/service-kit'
import { BatonError, createVerifier, type AccessTokenClaims, type VerifierOptions } from '../src/index.js'
import { verifierPlugin, type FastifyVerifierOptions } from '../src/fastify.js'
import type { AdapterExtras } from '../src/adapter.js'
import { AUDIENCE, ISSUER, claims, generateTestKey, randomAuthorizationValues, signToken, testClock, type TestClock } from './helper.js'

const ed = generateTestKey('EdDSA')
const keys = [{ kid: ed.kid, publicKey: ed.publicKey }]

interface Built {
  app: FastifyInstance
  clock: TestClock
  seen: AccessTokenClaims[]
}

/** A Fastify app with the verifier and three routes; `withBaton` adds service-kit's error handler and metrics, as the services have. */
async function build (t: Test, options: Partial<VerifierOptions> & AdapterExtras = {}, withBaton = true): Promise<Built> {
  const clock = testClock()
  const seen: AccessTokenClaims[] = []
  const app = Fastify({ logger: false })
  if (withBaton) {
    await app.register(errorHandlerPlugin)
    await app.register(metricsPlugin, { prefix: 'test_' })
  }
  await app.register(verifierPlugin, { keys, issuer: ISSUER, audience: AUDIENCE, clockSkew: 5, now: clock.now, ...options } as FastifyVerifierOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    seen.push(request.auth)
    return request.auth
  })
  // requireScope alone: it authenticates when no earlier hook did.
  app.get('/reports', { preHandler: app.requireScope('reports:read') }, async (request) => ({ sub: request.auth.sub }))
  app.get('/admin', { onRequest: [app.authenticate, app.requireScope('reports:read', 'admin')] }, async (request) => ({ sub: request.auth.sub }))
  app.get('/open', async (request) => ({ auth: request.auth }))
  await app.ready()
  t.teardown(async () => { await app.close() })
  return { app, clock, seen }
}

async function get (app: FastifyInstance, url: string, token: string | undefined): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
}

t.test('a bare Fastify app answers as RFC 6750 says, with no error handler of its own', async (t) => {
  const { app, clock } = await build(t, {}, false)
  const valid = await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.equal(valid.statusCode, 200)

  const missing = await get(app, '/me', undefined)
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="baton"')
  t.same(missing.json(), { error_description: 'an access token is required' }, 'no error code, no Fastify error shape')
  t.equal(missing.headers['cache-control'], 'no-store')

  const malformed = await app.inject({ url: '/me', headers: { authorization: 'Bearer a b' } })
  t.equal(malformed.statusCode, 400)
  t.same(malformed.json(), { error: 'invalid_request', error_description: 'the Authorization header must be Bearer followed by one token' })
  t.equal(malformed.headers['www-authenticate'], 'Bearer realm="baton", error="invalid_request", error_description="the Authorization header must be Bearer followed by one token"')

  const bad = await get(app, '/me', 'a.b.c')
  t.equal(bad.statusCode, 401)
  t.equal(bad.json().error, 'invalid_token')
  t.match(bad.headers['www-authenticate'], /^Bearer realm="baton", error="invalid_token", error_description="[^"]+"$/)

  const scope = await get(app, '/reports', signToken(ed, claims({}, clock.now())))
  t.equal(scope.statusCode, 403)
  t.equal(scope.headers['www-authenticate'], 'Bearer realm="baton", error="insufficient_scope", error_description="the access token lacks the scope reports:read", scope="reports:read"')
})

t.test('the realm option names the challenge\'s realm', async (t) => {
  const { app } = await build(t, { realm: 'reports-api' }, false)
  t.equal((await get(app, '/me', undefined)).headers['www-authenticate'], 'Bearer realm="reports-api"')
})

t.test('the hook answers a token it has seen before synchronously', async (t) => {
  const { app, clock } = await build(t)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200, 'first use: verified and remembered')
  const request = { headers: { authorization: `Bearer ${token}` }, auth: null } as unknown as FastifyRequest
  let called = false
  app.authenticate.call(app, request, {} as FastifyReply, (error?: Error) => { called = error === undefined })
  t.ok(called, 'done() was called before the hook returned')
  t.equal(request.auth.sub, 'user-1')
})

t.test('requireScope: authenticates on its own, then demands every scope it names', async (t) => {
  const { app, clock } = await build(t)
  const missing = await get(app, '/reports', undefined)
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="baton"')

  const without = await get(app, '/reports', signToken(ed, claims({ scope: 'profile reports:write' }, clock.now())))
  t.equal(without.statusCode, 403)
  t.same(without.json(), { error: 'insufficient_scope', error_description: 'the access token lacks the scope reports:read' })

  t.equal((await get(app, '/reports', signToken(ed, claims({ scope: 'reports:readx reports' }, clock.now())))).statusCode, 403, 'scopes match whole words only')
  const withScope = await get(app, '/reports', signToken(ed, claims({ scope: 'profile reports:read' }, clock.now())))
  t.equal(withScope.statusCode, 200)
  t.same(withScope.json(), { sub: 'user-1' })

  const oneOfTwo = await get(app, '/admin', signToken(ed, claims({ scope: 'reports:read' }, clock.now())))
  t.equal(oneOfTwo.statusCode, 403)
  t.match(oneOfTwo.headers['www-authenticate'], /scope="reports:read admin"$/)
  t.equal((await get(app, '/admin', signToken(ed, claims({ scope: 'admin reports:read' }, clock.now())))).statusCode, 200)
})

t.test('requireScope refuses, at declaration, anything but RFC 6749 scope tokens', async (t) => {
  const { app } = await build(t)
  t.throws(() => app.requireScope('a b'), /not a single RFC 6749 scope/)
  t.throws(() => app.requireScope(''), /not a single RFC 6749 scope/)
  t.throws(() => app.requireScope('quote"d'), /not a single RFC 6749 scope/)
  t.throws(() => app.requireScope(), /at least one scope/)
})

t.test('request.auth is null on routes without the hook, and a per-request copy', async (t) => {
  const { app, clock, seen } = await build(t)
  t.same((await get(app, '/open', undefined)).json(), { auth: null })
  const token = signToken(ed, claims({}, clock.now()))
  await get(app, '/me', token)
  ;(seen[0] as { sub: string }).sub = 'mallory'
  t.equal((await get(app, '/me', token)).json().sub, 'user-1', 'a handler changing request.auth does not change the cached claims')
})

t.test('onRefused is told of every refusal, with its reason', async (t) => {
  const reasons: string[] = []
  const { app, clock } = await build(t, { isRevoked: (tokenClaims) => tokenClaims.sid === 'revoked', onRefused: (error) => { reasons.push(`${error.status} ${error.reason}`) } })
  await get(app, '/me', undefined)
  await app.inject({ url: '/me', headers: { authorization: 'Bearer' } })
  await get(app, '/me', 'a.b.c')
  await get(app, '/me', signToken(ed, claims({ exp: Math.floor(clock.now() / 1000) - 60 }, clock.now())))
  await get(app, '/me', signToken(ed, claims({}, clock.now()), { kid: 'nobody' }))
  await get(app, '/me', signToken(ed, claims({ sid: 'revoked' }, clock.now())))
  await get(app, '/reports', signToken(ed, claims({}, clock.now())))
  await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.same(reasons, ['401 missing', '400 malformed', '401 malformed', '401 expired', '401 unknown_kid', '401 rejected', '403 insufficient_scope'])
})

t.test('service-kit counts refusals by reason in baton_verify_failures_total', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(errorHandlerPlugin)
  await app.register(metricsPlugin, { prefix: 'test_' })
  await app.register(verifierPlugin, { keys, issuer: ISSUER, audience: AUDIENCE, onRefused: countVerifyFailures(app) })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))
  t.teardown(async () => { await app.close() })
  await get(app, '/me', undefined)
  await get(app, '/me', 'a.b.c')
  await get(app, '/me', 'not-a-jwt')
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /baton_verify_failures_total\{reason="missing"\} 1\n/)
  t.match(metrics, /baton_verify_failures_total\{reason="malformed"\} 2\n/)
})

t.test('a key-set outage and other errors go to the app\'s error handler', async (t) => {
  const failing = { keys: undefined, keySource: { getKey: async () => { throw new Error('disk on fire') }, ready: () => true } }
  const { app, clock } = await build(t, failing)
  const response = await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.equal(response.statusCode, 503)
  t.same(response.json(), { error: 'temporarily_unavailable', error_description: 'verification keys are unavailable' })
  t.notMatch(response.body, /disk on fire/)

  const thrown = await build(t, { isRevoked: () => { throw new BatonError('BATON_UNAVAILABLE', 'session store unavailable', { headers: { 'retry-after': '1' } }) } })
  const unavailable = await get(thrown.app, '/me', signToken(ed, claims({}, thrown.clock.now())))
  t.equal(unavailable.statusCode, 503)
  t.equal(unavailable.headers['retry-after'], '1')
  t.same(unavailable.json(), { error: 'temporarily_unavailable', error_description: 'session store unavailable' })
})

t.test('a verifier made elsewhere can be shared, and stays open when the app closes', async (t) => {
  const clock = testClock()
  const verifier = createVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, now: clock.now })
  const token = signToken(ed, claims({}, clock.now()))
  for (let i = 0; i < 2; i++) {
    const app = Fastify({ logger: false })
    await app.register(verifierPlugin, { verifier })
    app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))
    t.equal((await get(app, '/me', token)).statusCode, 200, `app ${i + 1}`)
    await app.close()
  }
  t.notOk(verifier.check(token) instanceof Promise, 'the second app found the token in the shared cache')
})

t.test('verifyAccessToken checks a token that came some other way', async (t) => {
  const { app, clock } = await build(t)
  t.equal((await app.verifyAccessToken(signToken(ed, claims({}, clock.now())))).sub, 'user-1')
  await t.rejects(app.verifyAccessToken('a.b.c'), { statusCode: 401, error: 'invalid_token' })
})

t.test('bad options stop registration with a message naming the option', async (t) => {
  const base = { keys, issuer: ISSUER, audience: AUDIENCE }
  for (const [overrides, message] of [[{ issuer: '' }, /options\.issuer/], [{ clockSkew: -1 }, /options\.clockSkew/]] as const) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(verifierPlugin, { ...base, ...overrides } as FastifyVerifierOptions).ready() }, message)
    await app.close()
  }
})

t.test('garbage never gets a 5xx', async (t) => {
  const { app, clock } = await build(t)
  const valid = signToken(ed, claims({}, clock.now()))
  const [h, p] = valid.split('.')
  const json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const values: string[] = [
    'Bearer ' + 'a'.repeat(100_000),
    'Bearer ' + 'a.'.repeat(5000) + 'a',
    `Bearer ${h}.${p}.`,
    `Bearer ${h}.${p}`,
    `Bearer ${h}..${valid.split('.')[2]}`,
    `Bearer ${Buffer.from('{"alg":"EdDSA"').toString('base64url')}.${p}.AAAA`,
    `Bearer ${json(null)}.${p}.AAAA`,
    `Bearer ${json([])}.${p}.AAAA`,
    `Bearer ${h}.${json([1, 2])}.AAAA`,
    `Bearer ${h}.${json('str')}.AAAA`,
    `Bearer ${h}.${Buffer.from('{"__proto__":{"admin":true}}').toString('base64url')}.AAAA`,
    `Bearer ${json({ alg: 'EdDSA', typ: 'at+jwt', kid: { toString: 1 } })}.${p}.AAAA`,
    `Bearer ${json({ alg: 'EdDSA', typ: 'at+jwt', kid: 'x'.repeat(10_000) })}.${p}.AAAA`,
    `Bearer ${json({ alg: ['EdDSA'], typ: 'at+jwt', kid: ed.kid })}.${p}.AAAA`,
    `Bearer ${json({ alg: 'EdDSA', typ: 7, kid: ed.kid })}.${p}.AAAA`,
    `Bearer ${json({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid, crit: 'x' })}.${p}.AAAA`,
    `Bearer ${Buffer.from('{"alg":"EdDSA","kid":"\\ud800"}').toString('base64url')}.${p}.AAAA`,
    'Bearer ∞.∞.∞',
    'Bearer 😀',
    '😀 😀',
    'Bearer ' + randomBytes(64).toString('base64'),
    'Bearer ' + randomBytes(64).toString('base64url') + '.' + randomBytes(64).toString('base64url') + '.' + randomBytes(64).toString('base64url')
  ]
  const status = async (value: string): Promise<number> => (await app.inject({ url: '/me', headers: { authorization: value } })).statusCode
  for (const value of values) {
    const answered = await status(value)
    t.ok(answered >= 400 && answered < 500, `${answered} for ${JSON.stringify(value.slice(0, 40))}`)
  }
  // Random values are one property, so one assertion: it lists the values that got anything but a 4xx.
  const random = randomAuthorizationValues(h!, 200).map((value) => value.toString('latin1'))
  const not4xx: string[] = []
  for (const value of random) {
    const answered = await status(value)
    if (answered < 400 || answered >= 500) not4xx.push(`${answered} for ${JSON.stringify(value)}`)
  }
  t.same(not4xx, [], `${random.length} random values, most of them after "Bearer ": a 4xx each`)
})
