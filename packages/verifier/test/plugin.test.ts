import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { errorHandlerPlugin, metricsPlugin } from '@baton/service-kit'
import { BatonError, type AccessTokenClaims } from '@baton/tokens'
import { createStaticKeySource, verifierPlugin, type KeySource, type VerifierOptions } from '../src/index.js'
import {
  AUDIENCE, ISSUER, claims, craftToken, generateTestKey, signInput, signToken, testClock,
  type TestClock, type TestKey
} from './helper.js'

const ed = generateTestKey('EdDSA')
const ec = generateTestKey('ES256')

interface Built {
  app: FastifyInstance
  clock: TestClock
  seen: AccessTokenClaims[]
}

/** A bare Fastify app: service-kit's error handler and metrics, the verifier, two routes. */
async function build (t: Test, options: Partial<VerifierOptions> = {}, keys: TestKey[] = [ed, ec]): Promise<Built> {
  const clock = testClock()
  const seen: AccessTokenClaims[] = []
  const app = Fastify({ logger: false })
  await app.register(errorHandlerPlugin)
  await app.register(metricsPlugin, { prefix: 'test_' })
  await app.register(verifierPlugin, {
    keySource: createStaticKeySource(() => keys.map((key) => ({ kid: key.kid, publicKey: key.publicKey }))),
    issuer: ISSUER,
    audience: AUDIENCE,
    clockSkewSeconds: 5,
    now: clock.now,
    ...options
  })
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    seen.push(request.auth)
    return request.auth
  })
  // requireScope alone: it authenticates when no earlier hook did.
  app.get('/reports', { preHandler: app.requireScope('reports:read') }, async (request) => ({ sub: request.auth.sub }))
  app.get('/open', async (request) => ({ auth: request.auth }))
  await app.ready()
  t.teardown(async () => { await app.close() })
  return { app, clock, seen }
}

async function get (app: FastifyInstance, url: string, token: string | undefined): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
}

function assertInvalidToken (t: Test, response: LightMyRequestResponse, description?: string): void {
  t.equal(response.statusCode, 401)
  t.equal(response.json().error, 'invalid_token')
  if (description !== undefined) t.equal(response.json().error_description, description)
  t.match(response.headers['www-authenticate'], /^Bearer realm="baton", error="invalid_token", error_description="[^"]+"$/)
}

t.test('a valid EdDSA or ES256 token sets request.auth to its claims', async (t) => {
  const { app, clock } = await build(t)
  for (const key of [ed, ec]) {
    const payload = claims({ scope: 'profile reports:read' }, clock.now())
    const response = await get(app, '/me', signToken(key, payload))
    t.equal(response.statusCode, 200, key.alg)
    t.same(response.json(), payload)
  }
})

t.test('PEM keys and KeyObjects from a key source both verify', async (t) => {
  const source: KeySource = {
    getKey: async (kid) => kid === ed.kid ? ed.publicPem : kid === ec.kid ? ec.publicKey : undefined,
    ready: () => true
  }
  const { app, clock } = await build(t, { keySource: source })
  t.equal((await get(app, '/me', signToken(ed, claims({}, clock.now())))).statusCode, 200)
  t.equal((await get(app, '/me', signToken(ec, claims({}, clock.now())))).statusCode, 200)
})

t.test('a kid fixes the algorithm: an ES256 header naming an Ed25519 key is refused', async (t) => {
  const { app, clock } = await build(t)
  const token = craftToken({ alg: 'ES256', typ: 'at+jwt', kid: ed.kid }, claims({}, clock.now()), (input) => signInput(ec, input))
  assertInvalidToken(t, await get(app, '/me', token), 'the access token algorithm is not accepted')
})

t.test('the algorithms option narrows the allow-list', async (t) => {
  const { app, clock } = await build(t, { algorithms: ['ES256'] })
  assertInvalidToken(t, await get(app, '/me', signToken(ed, claims({}, clock.now()))))
  t.equal((await get(app, '/me', signToken(ec, claims({}, clock.now())))).statusCode, 200)
})

t.test('lifetime: exp, nbf and iat with the clock-skew leeway, on the injected clock', async (t) => {
  const { app, clock } = await build(t)
  const nowS = Math.floor(clock.now() / 1000)
  const cases: Array<[string, Record<string, unknown>, number]> = [
    ['expired 4 s ago (within skew)', { exp: nowS - 4 }, 200],
    ['expired 6 s ago', { exp: nowS - 6 }, 401],
    ['nbf 4 s ahead (within skew)', { nbf: nowS + 4 }, 200],
    ['nbf 60 s ahead', { nbf: nowS + 60 }, 401],
    ['iat 4 s ahead (within skew)', { iat: nowS + 4 }, 200],
    ['iat 60 s ahead', { iat: nowS + 60 }, 401]
  ]
  for (const [name, overrides, status] of cases) {
    const response = await get(app, '/me', signToken(ed, claims(overrides, clock.now())))
    t.equal(response.statusCode, status, name)
  }
  const expired = await get(app, '/me', signToken(ed, claims({ exp: nowS - 60 }, clock.now())))
  t.equal(expired.json().error_description, 'the access token has expired')
})

t.test('a cached verification still expires on time', async (t) => {
  const { app, clock } = await build(t)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200)
  t.equal((await get(app, '/me', token)).statusCode, 200, 'second use, from the cache')
  clock.advance(900_000 + 5_000)
  t.equal((await get(app, '/me', token)).statusCode, 200, 'exactly at exp + skew')
  clock.advance(1000)
  assertInvalidToken(t, await get(app, '/me', token), 'the access token has expired')
})

t.test('a cached token is refused once its key has left the key set', async (t) => {
  const keys = [ed, ec]
  const { app, clock } = await build(t, {}, keys)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200)
  t.equal((await get(app, '/me', token)).statusCode, 200, 'second use, from the cache')
  keys.splice(0, 1)
  assertInvalidToken(t, await get(app, '/me', token), 'the access token was signed with an unknown key')
  keys.unshift(ed)
  t.equal((await get(app, '/me', token)).statusCode, 200, 'accepted again once the key is back')
})

t.test('a cached token is refused when its kid now names another key', async (t) => {
  const impostor = { ...generateTestKey('EdDSA'), kid: ed.kid }
  const keys = [ed]
  const { app, clock } = await build(t, {}, keys)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200)
  keys[0] = impostor
  assertInvalidToken(t, await get(app, '/me', token), 'the access token signature is invalid')
})

t.test('checkToken runs on every use of a token, cached or not', async (t) => {
  let revoked = false
  let calls = 0
  const { app, clock } = await build(t, { checkToken: () => { calls++; return revoked ? 'the token has been revoked' : undefined } })
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200)
  t.equal((await get(app, '/me', token)).statusCode, 200)
  revoked = true
  assertInvalidToken(t, await get(app, '/me', token), 'the token has been revoked')
  t.equal(calls, 3)
})

t.test('cacheSize 0 verifies every use afresh, with the same answers', async (t) => {
  const keys = [ed]
  const { app, clock } = await build(t, { cacheSize: 0 }, keys)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await get(app, '/me', token)).statusCode, 200)
  t.equal((await get(app, '/me', token)).json().sub, 'user-1')
  keys.pop()
  assertInvalidToken(t, await get(app, '/me', token), 'the access token was signed with an unknown key')
})

t.test('claims Baton relies on must have the right types', async (t) => {
  const { app, clock } = await build(t)
  const cases: Record<string, Record<string, unknown>> = {
    'sub a number': { sub: 42 },
    'sub empty': { sub: '' },
    'jti a number': { jti: 7 },
    'scope an array': { scope: ['profile'] },
    'scope missing': { scope: undefined },
    'client_id missing': { client_id: undefined },
    'exp a float': { exp: Math.floor(clock.now() / 1000) + 60.5 },
    'exp a string': { exp: String(Math.floor(clock.now() / 1000) + 60) },
    'iat a float': { iat: Math.floor(clock.now() / 1000) - 0.5 },
    'nbf a string': { nbf: 'yesterday' },
    'aud an array': { aud: [AUDIENCE] },
    'sid a number': { sid: 1 },
    'username an object': { username: { first: 'a' } }
  }
  for (const [name, overrides] of Object.entries(cases)) {
    // By hand: fast-jwt's signer refuses to write most of these.
    const payload = JSON.parse(JSON.stringify(claims(overrides, clock.now())))
    const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ed, input))
    const response = await get(app, '/me', token)
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().error, 'invalid_token', name)
  }
})

t.test('an unknown critical header is refused', async (t) => {
  const { app, clock } = await build(t)
  const token = signToken(ed, claims({}, clock.now()), { crit: ['exp-ext'], 'exp-ext': true })
  assertInvalidToken(t, await get(app, '/me', token))
})

t.test('checkToken: a reason refuses the token, with that reason as description', async (t) => {
  const revoked = new Set(['session-2'])
  const calls: string[] = []
  const { app, clock } = await build(t, {
    checkToken: async (tokenClaims, request) => {
      calls.push(`${request.url}:${tokenClaims.sub}`)
      return tokenClaims.sid !== undefined && revoked.has(tokenClaims.sid) ? 'session has ended' : undefined
    }
  })
  t.equal((await get(app, '/me', signToken(ed, claims({ sid: 'session-1' }, clock.now())))).statusCode, 200)
  assertInvalidToken(t, await get(app, '/me', signToken(ed, claims({ sid: 'session-2' }, clock.now()))), 'session has ended')
  t.same(calls, ['/me:user-1', '/me:user-1'])
})

t.test('checkToken: a reason with characters a header cannot carry still gives a valid challenge', async (t) => {
  const { app, clock } = await build(t, { checkToken: () => 'session "7" ended\n😀' })
  const response = await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.equal(response.statusCode, 401)
  t.same(response.json(), { error: 'invalid_token', error_description: 'session "7" ended\n😀' })
  t.equal(response.headers['www-authenticate'], 'Bearer realm="baton", error="invalid_token", error_description="session 7 ended"')
})

t.test('checkToken: a BatonError it throws reaches the client as is', async (t) => {
  const { app, clock } = await build(t, {
    checkToken: () => { throw new BatonError('BATON_UNAVAILABLE', 'session store unavailable') }
  })
  const response = await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.equal(response.statusCode, 503)
  t.same(response.json(), { error: 'temporarily_unavailable', error_description: 'session store unavailable' })
})

t.test('a failing key source is a 503, not a 401 that would make clients drop their tokens', async (t) => {
  const { app, clock } = await build(t, {
    keySource: { getKey: async () => { throw new Error('disk on fire') }, ready: () => true }
  })
  const response = await get(app, '/me', signToken(ed, claims({}, clock.now())))
  t.equal(response.statusCode, 503)
  t.notMatch(response.body, /disk on fire/)
})

t.test('a key source handing out a key of the wrong kind refuses the token', async (t) => {
  const { app, clock } = await build(t, {
    keySource: { getKey: async () => 'not a pem', ready: () => true }
  })
  assertInvalidToken(t, await get(app, '/me', signToken(ed, claims({}, clock.now()))))
})

t.test('requireScope: authenticates on its own, then demands the scope', async (t) => {
  const { app, clock } = await build(t)
  const missing = await get(app, '/reports', undefined)
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="baton"')

  const without = await get(app, '/reports', signToken(ed, claims({ scope: 'profile reports:write' }, clock.now())))
  t.equal(without.statusCode, 403)
  t.same(without.json(), { error: 'insufficient_scope', error_description: 'the access token lacks the scope reports:read' })
  t.equal(without.headers['www-authenticate'], 'Bearer realm="baton", error="insufficient_scope", error_description="the access token lacks the scope reports:read", scope="reports:read"')

  const prefix = await get(app, '/reports', signToken(ed, claims({ scope: 'reports:readx reports' }, clock.now())))
  t.equal(prefix.statusCode, 403, 'scopes match whole words only')

  const withScope = await get(app, '/reports', signToken(ed, claims({ scope: 'profile reports:read' }, clock.now())))
  t.equal(withScope.statusCode, 200)
  t.same(withScope.json(), { sub: 'user-1' })
})

t.test('requireScope refuses a scope that is not one RFC 6749 scope token', async (t) => {
  const { app } = await build(t)
  t.throws(() => app.requireScope('a b'))
  t.throws(() => app.requireScope(''))
  t.throws(() => app.requireScope('quote"d'))
})

t.test('request.auth is null on routes without the hook, and a per-request copy', async (t) => {
  const { app, clock, seen } = await build(t)
  t.same((await get(app, '/open', undefined)).json(), { auth: null })
  const token = signToken(ed, claims({}, clock.now()))
  await get(app, '/me', token)
  ;(seen[0] as { sub: string }).sub = 'mallory'
  t.equal((await get(app, '/me', token)).json().sub, 'user-1', 'a handler changing request.auth does not change the cached claims')
})

t.test('failures are counted by reason in baton_verify_failures_total', async (t) => {
  const { app, clock } = await build(t)
  await get(app, '/me', undefined)
  await app.inject({ url: '/me', headers: { authorization: 'Bearer' } })
  await get(app, '/me', 'a.b.c')
  await get(app, '/me', signToken(ed, claims({ exp: Math.floor(clock.now() / 1000) - 60 }, clock.now())))
  await get(app, '/me', signToken(ed, claims({}, clock.now()), { kid: 'nobody' }))
  await get(app, '/reports', signToken(ed, claims({}, clock.now())))
  const metrics = (await app.inject('/metrics')).body
  const counts = { missing: 1, malformed: 2, expired: 1, unknown_kid: 1, insufficient_scope: 1 }
  for (const [reason, count] of Object.entries(counts)) {
    t.match(metrics, new RegExp(`baton_verify_failures_total\\{reason="${reason}"\\} ${count}\n`), reason)
  }
})

t.test('works without a metrics registry', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(errorHandlerPlugin)
  await app.register(verifierPlugin, { keySource: createStaticKeySource(() => [{ kid: ed.kid, publicKey: ed.publicKey }]), issuer: ISSUER, audience: AUDIENCE, clockSkewSeconds: 5 })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))
  t.teardown(async () => { await app.close() })
  t.equal((await get(app, '/me', undefined)).statusCode, 401)
  t.equal((await get(app, '/me', signToken(ed, claims()))).statusCode, 200)
})

t.test('bad options stop registration with a message naming the option', async (t) => {
  const base: VerifierOptions = { keySource: createStaticKeySource(() => []), issuer: ISSUER, audience: AUDIENCE, clockSkewSeconds: 5 }
  const cases: Array<[Partial<Record<keyof VerifierOptions, unknown>>, RegExp]> = [
    [{ issuer: '' }, /options\.issuer/],
    [{ audience: undefined }, /options\.audience/],
    [{ clockSkewSeconds: -1 }, /options\.clockSkewSeconds/],
    [{ algorithms: ['HS256'] }, /options\.algorithms/],
    [{ algorithms: [] }, /options\.algorithms/],
    [{ keySource: {} }, /options\.keySource/],
    [{ cacheSize: -5 }, /options\.cacheSize/]
  ]
  for (const [overrides, message] of cases) {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(verifierPlugin, { ...base, ...overrides } as VerifierOptions).ready() }, message)
    await app.close()
  }
})

t.test('garbage never gets a 5xx', async (t) => {
  const { app, clock } = await build(t)
  const valid = signToken(ed, claims({}, clock.now()))
  const [h, p] = valid.split('.')
  const values: string[] = [
    'Bearer ' + 'a'.repeat(100_000),
    'Bearer ' + 'a.'.repeat(5000) + 'a',
    `Bearer ${h}.${p}.`,
    `Bearer ${h}.${p}`,
    `Bearer ${h}..${valid.split('.')[2]}`,
    `Bearer ${Buffer.from('{"alg":"EdDSA"').toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from('null').toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from('[]').toString('base64url')}.${p}.AAAA`,
    `Bearer ${h}.${Buffer.from('[1,2]').toString('base64url')}.AAAA`,
    `Bearer ${h}.${Buffer.from('"str"').toString('base64url')}.AAAA`,
    `Bearer ${h}.${Buffer.from('{"__proto__":{"admin":true}}').toString('base64url')}.AAAA`,
    `Bearer ${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: { toString: 1 } })).toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: 'x'.repeat(10_000) })).toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from(JSON.stringify({ alg: ['EdDSA'], typ: 'at+jwt', kid: ed.kid })).toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 7, kid: ed.kid })).toString('base64url')}.${p}.AAAA`,
    `Bearer ${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid, crit: 'x' })).toString('base64url')}.${p}.AAAA`,
    'Bearer ∞.∞.∞',
    'Bearer 😀',
    '😀 😀',
    'Bearer ' + randomBytes(64).toString('base64'),
    'Bearer ' + randomBytes(64).toString('base64url') + '.' + randomBytes(64).toString('base64url') + '.' + randomBytes(64).toString('base64url')
  ]
  for (let i = 0; i < 200; i++) values.push(randomBytes(1 + (i % 60)).toString('latin1'))
  for (const value of values) {
    const response = await app.inject({ url: '/me', headers: { authorization: value } })
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `${response.statusCode} for ${JSON.stringify(value.slice(0, 40))}`)
  }
})
