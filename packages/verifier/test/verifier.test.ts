// The framework-free core: createVerifier and what verify() answers.
import t, { type Test } from 'tap'
import { BatonError, createVerifier, VerifierError, type AccessTokenClaims, type KeySource, type VerifierOptions } from '../src/index.js'
import { acceptedAudiences } from './forgeries.js'
import {
  AUDIENCE, ISSUER, claims, craftToken, generateTestKey, signInput, signToken, startJwksServer, testClock,
  type TestClock, type TestKey
} from './helper.js'

const ed = generateTestKey('EdDSA')
const ec = generateTestKey('ES256')

function build (options: Partial<VerifierOptions> = {}, keys: TestKey[] = [ed, ec]): { verify: (token: string) => Promise<AccessTokenClaims>, clock: TestClock, verifier: ReturnType<typeof createVerifier> } {
  const clock = testClock()
  const verifier = createVerifier({
    keys: () => keys.map((key) => ({ kid: key.kid, publicKey: key.publicKey })),
    issuer: ISSUER,
    audience: AUDIENCE,
    clockSkew: 5,
    now: clock.now,
    ...options
  })
  return { verify: verifier.verify, clock, verifier }
}

/** What verify() refused with: the wire-visible parts, or 'accepted'. */
async function outcome (promise: Promise<unknown>): Promise<{ status: number, error: string | undefined, description: string, reason: string } | 'accepted'> {
  try {
    await promise
    return 'accepted'
  } catch (error) {
    if (!(error instanceof VerifierError)) throw error
    return { status: error.status, error: error.error, description: error.description, reason: error.reason }
  }
}

/** One assertion: refused with 401 invalid_token, and the reason and description when given. */
async function assertRefused (t: Test, promise: Promise<unknown>, expected: { reason?: string, description?: string } = {}): Promise<void> {
  // t.has compares each field exactly (t.match would accept a substring).
  t.has(await outcome(promise), { status: 401, error: 'invalid_token', ...expected }, `refused${expected.reason === undefined ? '' : ` for ${expected.reason}`}`)
}

t.test('a valid EdDSA or ES256 token resolves to its claims', async (t) => {
  const { verify, clock } = build()
  for (const key of [ed, ec]) {
    const payload = claims({ scope: 'profile reports:read' }, clock.now())
    t.same(await verify(signToken(key, payload)), payload, key.alg)
  }
})

t.test('keys as PEM, KeyObject or JWK all verify', async (t) => {
  const forms: Array<[string, (key: TestKey) => unknown]> = [['PEM', (key) => key.publicPem], ['KeyObject', (key) => key.publicKey], ['JWK', (key) => key.jwk]]
  for (const [name, form] of forms) {
    const { verify, clock } = build({ keys: [ed, ec].map((key) => ({ kid: key.kid, publicKey: form(key) as string })) })
    t.equal((await verify(signToken(ed, claims({}, clock.now())))).sub, 'user-1', `${name}, Ed25519`)
    t.equal((await verify(signToken(ec, claims({}, clock.now())))).sub, 'user-1', `${name}, P-256`)
  }
})

t.test('aud: a string or an array that contains the audience is accepted; nothing else is', async (t) => {
  const { verify, clock } = build()
  for (const aud of acceptedAudiences(AUDIENCE)) {
    const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, claims({ aud }, clock.now()), (input) => signInput(ed, input))
    t.same((await verify(token)).aud, aud, `accepted: ${JSON.stringify(aud)}`)
  }
  const refused: unknown[] = [['another-api'], [], [AUDIENCE, 42], [42], [[AUDIENCE]], [AUDIENCE.toUpperCase()], [null], 42, { aud: AUDIENCE }, '']
  for (const aud of refused) {
    const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, claims({ aud }, clock.now()), (input) => signInput(ed, input))
    await assertRefused(t, verify(token), { reason: 'claims' })
  }
})

t.test('a kid fixes the algorithm: an ES256 header naming an Ed25519 key is refused', async (t) => {
  const { verify, clock } = build()
  const token = craftToken({ alg: 'ES256', typ: 'at+jwt', kid: ed.kid }, claims({}, clock.now()), (input) => signInput(ec, input))
  await assertRefused(t, verify(token), { reason: 'algorithm', description: 'the access token algorithm is not accepted' })
})

t.test('the algorithms option narrows the allow-list', async (t) => {
  const { verify, clock } = build({ algorithms: ['ES256'] })
  await assertRefused(t, verify(signToken(ed, claims({}, clock.now()))), { reason: 'algorithm' })
  t.equal((await verify(signToken(ec, claims({}, clock.now())))).sub, 'user-1')
})

t.test('lifetime: exp, nbf and iat with the clock-skew leeway, on the injected clock', async (t) => {
  const { verify, clock } = build()
  const nowS = Math.floor(clock.now() / 1000)
  const cases: Array<[string, Record<string, unknown>, string | undefined]> = [
    ['expired 4 s ago (within skew)', { exp: nowS - 4 }, undefined],
    ['expired 6 s ago', { exp: nowS - 6 }, 'expired'],
    ['nbf 4 s ahead (within skew)', { nbf: nowS + 4 }, undefined],
    ['nbf 60 s ahead', { nbf: nowS + 60 }, 'not_yet_valid'],
    ['iat 4 s ahead (within skew)', { iat: nowS + 4 }, undefined],
    ['iat 60 s ahead', { iat: nowS + 60 }, 'issued_in_future']
  ]
  for (const [name, overrides, reason] of cases) {
    const result = await outcome(verify(signToken(ed, claims(overrides, clock.now()))))
    t.equal(result === 'accepted' ? undefined : result.reason, reason, name)
  }
  await assertRefused(t, verify(signToken(ed, claims({ exp: nowS - 60 }, clock.now()))), { description: 'the access token has expired' })
})

t.test('clockSkew takes seconds or a duration, and 0 means none', async (t) => {
  for (const [skew, accepted] of [['10s', true], [10, true], [0, false]] as const) {
    const { verify, clock } = build({ clockSkew: skew })
    const result = await outcome(verify(signToken(ed, claims({ exp: Math.floor(clock.now() / 1000) - 3 }, clock.now()))))
    t.equal(result === 'accepted', accepted, `clockSkew ${JSON.stringify(skew)}`)
  }
})

t.test('a token seen before is answered without a promise, and still expires on time', async (t) => {
  const { verifier, clock } = build()
  const token = signToken(ed, claims({}, clock.now()))
  t.ok(verifier.check(token) instanceof Promise, 'the first use verifies the signature (the key source is asynchronous)')
  await verifier.verify(token)
  const again = verifier.check(token)
  t.notOk(again instanceof Promise, 'a repeated token: claims at once')
  t.equal((again as AccessTokenClaims).sub, 'user-1')
  clock.advance(900_000 + 5_000)
  t.notOk(verifier.check(token) instanceof Promise, 'exactly at exp + skew: still accepted')
  clock.advance(1000)
  t.throws(() => verifier.check(token), { reason: 'expired', statusCode: 401 }, 'a second later: refused at once')
})

t.test('a cached token is refused once its key has left the key set, and accepted when it is back', async (t) => {
  const keys = [ed, ec]
  const { verify, clock } = build({}, keys)
  const token = signToken(ed, claims({}, clock.now()))
  await verify(token)
  await verify(token)
  keys.splice(0, 1)
  await assertRefused(t, verify(token), { reason: 'unknown_kid', description: 'the access token was signed with an unknown key' })
  keys.unshift(ed)
  t.equal((await verify(token)).sub, 'user-1')
})

t.test('a cached token is refused when its kid now names another key', async (t) => {
  const impostor = { ...generateTestKey('EdDSA'), kid: ed.kid }
  const keys = [ed]
  const { verify, clock } = build({}, keys)
  const token = signToken(ed, claims({}, clock.now()))
  await verify(token)
  keys[0] = impostor
  await assertRefused(t, verify(token), { reason: 'signature', description: 'the access token signature is invalid' })
})

t.test('a key source without peekKey still serves cached tokens, asking getKey each time', async (t) => {
  let lookups = 0
  const source: KeySource = { getKey: async (kid) => { lookups++; return kid === ed.kid ? ed.publicPem : undefined }, ready: () => true }
  const { verifier, clock } = build({ keys: undefined, keySource: source })
  const token = signToken(ed, claims({}, clock.now()))
  await verifier.verify(token)
  t.ok(verifier.check(token) instanceof Promise)
  t.equal((await verifier.verify(token)).sub, 'user-1')
  t.equal(lookups, 3)
})

t.test('isRevoked runs on every use, cached or not; synchronous answers keep a repeated token promise-free', async (t) => {
  let revoked = false
  const seen: string[] = []
  const { verifier, clock } = build({ isRevoked: (tokenClaims) => { seen.push(tokenClaims.jti); return revoked } })
  const token = signToken(ed, claims({}, clock.now()))
  await verifier.verify(token)
  t.notOk(verifier.check(token) instanceof Promise)
  revoked = true
  t.throws(() => verifier.check(token), { reason: 'rejected', error: 'invalid_token', message: 'the access token has been revoked' })
  t.equal(seen.length, 3)
})

t.test('isRevoked may answer with a promise', async (t) => {
  const revokedSessions = new Set(['session-2'])
  const { verify, clock } = build({ isRevoked: async (tokenClaims) => revokedSessions.has(tokenClaims.sid ?? '') })
  t.equal((await verify(signToken(ed, claims({ sid: 'session-1' }, clock.now())))).sid, 'session-1')
  await assertRefused(t, verify(signToken(ed, claims({ sid: 'session-2' }, clock.now()))), { reason: 'rejected' })
})

t.test('isRevoked throwing a BatonError: it reaches the caller as is', async (t) => {
  const { verify, clock } = build({ isRevoked: () => { throw new BatonError('BATON_UNAVAILABLE', 'session store unavailable') } })
  await t.rejects(verify(signToken(ed, claims({}, clock.now()))), { statusCode: 503, error: 'temporarily_unavailable' })
})

t.test('requiredScopes: every token must carry them, else 403 insufficient_scope', async (t) => {
  const { verify, clock } = build({ requiredScopes: ['reports:read'] })
  t.equal((await verify(signToken(ed, claims({ scope: 'profile reports:read' }, clock.now())))).sub, 'user-1')
  await t.rejects(verify(signToken(ed, claims({ scope: 'reports:readx reports' }, clock.now()))), {
    statusCode: 403, error: 'insufficient_scope', scope: 'reports:read', reason: 'insufficient_scope', message: 'the access token lacks the scope reports:read'
  })
})

t.test('cacheSize 0 verifies every use afresh, with the same answers', async (t) => {
  const keys = [ed]
  const { verifier, clock } = build({ cacheSize: 0 }, keys)
  const token = signToken(ed, claims({}, clock.now()))
  t.equal((await verifier.verify(token)).sub, 'user-1')
  t.ok(verifier.check(token) instanceof Promise, 'nothing remembered')
  keys.pop()
  await assertRefused(t, verifier.verify(token), { reason: 'unknown_kid' })
})

t.test('claims Baton relies on must have the right types', async (t) => {
  const { verify, clock } = build()
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
    'sid a number': { sid: 1 },
    'username an object': { username: { first: 'a' } }
  }
  for (const [name, overrides] of Object.entries(cases)) {
    // By hand: fast-jwt's signer refuses to write most of these.
    const payload = JSON.parse(JSON.stringify(claims(overrides, clock.now()))) as Record<string, unknown>
    const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ed, input))
    const result = await outcome(verify(token))
    t.match(result, { status: 401, error: 'invalid_token' }, name)
  }
})

t.test('the claims handed out are a copy: a caller changing them does not change what the next one gets', async (t) => {
  const { verify, clock } = build()
  const token = signToken(ed, claims({}, clock.now()))
  const first = await verify(token)
  ;(first as { sub: string }).sub = 'mallory'
  t.equal((await verify(token)).sub, 'user-1')
})

t.test('a failing key source is a 503 BatonError, not a refusal that would make clients drop their tokens', async (t) => {
  const logged: string[] = []
  const { verify, clock } = build({
    keys: undefined,
    keySource: { getKey: async () => { throw new Error('disk on fire') }, ready: () => true },
    log: { info: () => {}, warn: () => {}, error: (_details, message) => { logged.push(message) } }
  })
  const error = await verify(signToken(ed, claims({}, clock.now()))).catch((caught: unknown) => caught)
  t.ok(error instanceof BatonError && !(error instanceof VerifierError))
  t.match(error, { statusCode: 503, error: 'temporarily_unavailable', message: 'verification keys are unavailable' })
  t.same(logged, ['the key source failed'])
})

t.test('a keys function that throws is a 503 too, cached token or not', async (t) => {
  let broken = false
  const { verifier, clock } = build({ keys: () => { if (broken) throw new Error('keyring unreadable'); return [{ kid: ed.kid, publicKey: ed.publicKey }] } })
  const token = signToken(ed, claims({}, clock.now()))
  await verifier.verify(token)
  broken = true
  await t.rejects(verifier.verify(token), { statusCode: 503, error: 'temporarily_unavailable' }, 'a token seen before')
  await t.rejects(verifier.verify(signToken(ed, claims({}, clock.now()))), { statusCode: 503 }, 'a new token')
})

t.test('a key source handing out a key of the wrong kind refuses the token', async (t) => {
  const { verify, clock } = build({ keys: undefined, keySource: { getKey: async () => 'not a pem', ready: () => true } })
  await assertRefused(t, verify(signToken(ed, claims({}, clock.now()))), { reason: 'unknown_kid' })
})

t.test('jwksUri: keys are fetched on first use, once for many requests at the same moment', async (t) => {
  const jwks = await startJwksServer([ed, ec])
  t.teardown(jwks.close)
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url })
  t.teardown(verifier.close)
  t.equal(verifier.ready(), false, 'nothing fetched at creation')
  const tokens = Array.from({ length: 20 }, () => signToken(ed, claims()))
  const results = await Promise.all(tokens.map(verifier.verify))
  t.equal(results.length, 20)
  t.equal(jwks.hits(), 1, 'one fetch')
  t.equal(verifier.ready(), true)
  await assertRefused(t, verifier.verify(signToken(generateTestKey('EdDSA', 'stranger'), claims())), { reason: 'unknown_kid' })
  t.equal(jwks.hits(), 1, 'an unknown kid right after a fetch does not fetch again')
})

t.test('jwksUri: a key set past its max-age is fetched again in the background, while the old keys serve', async (t) => {
  const clock = testClock()
  const jwks = await startJwksServer([ed], {
    routes: (app) => { app.addHook('onSend', async (_request, reply) => { reply.header('cache-control', 'max-age=60') }) }
  })
  t.teardown(jwks.close)
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url, now: clock.now })
  t.teardown(verifier.close)
  const token = signToken(ed, claims({}, clock.now()))
  await verifier.verify(token)
  t.equal(jwks.hits(), 1)
  jwks.keys = [ec]
  clock.advance(61_000)
  t.equal((await verifier.verify(token)).sub, 'user-1', 'the stale key set still answers this request')
  await verifier.refreshKeys()
  t.equal(jwks.hits(), 2, 'that request started one fetch in the background (joined here)')
  await assertRefused(t, verifier.verify(token), { reason: 'unknown_kid' })
  t.equal(jwks.hits(), 2, 'the withdrawn key is gone, and the fresh key set is not fetched again')
})

t.test('bad options throw at once with a message naming the option', async (t) => {
  const base: VerifierOptions = { keys: [], issuer: ISSUER, audience: AUDIENCE }
  const cases: Array<[Partial<Record<keyof VerifierOptions, unknown>>, RegExp]> = [
    [{ issuer: '' }, /options\.issuer/],
    [{ audience: undefined }, /options\.audience/],
    [{ clockSkew: -1 }, /options\.clockSkew/],
    [{ clockSkew: 'soon' }, /options\.clockSkew/],
    [{ algorithms: ['HS256'] }, /options\.algorithms/],
    [{ algorithms: [] }, /options\.algorithms/],
    [{ keys: undefined }, /options\.jwksUri or keys or keySource/],
    [{ jwksUri: 'http://127.0.0.1/jwks' }, /exactly one of them/],
    [{ keys: undefined, jwksUri: 'file:///etc/keys' }, /options\.jwksUri/],
    [{ keys: undefined, keySource: {} }, /options\.keySource/],
    [{ cacheSize: -5 }, /options\.cacheSize/],
    [{ requiredScopes: ['a b'] }, /options\.requiredScopes/],
    [{ isRevoked: 'yes' }, /options\.isRevoked/]
  ]
  for (const [overrides, message] of cases) {
    t.throws(() => createVerifier({ ...base, ...overrides } as VerifierOptions), message, JSON.stringify(overrides))
  }
})
