// Baton's own checks, each on its own. fast-jwt checks the signature, the
// algorithm, `typ`, `iss` and `aud` too, so a table of forged tokens sent
// through the whole verifier is refused even with one of Baton's checks gone
// (mutation testing showed it: scripts/mutation). These tests hold each of
// Baton's checks to its answer without fast-jwt behind it.
import t from 'tap'
import { checkClaims, checkTokenText } from '../src/checks.js'
import { VerifierError, createVerifier } from '../src/index.js'
import { withTrailingBits } from './forgeries.js'
import { AUDIENCE, ISSUER, claims, craftToken, generateTestKey, signInput, signToken, startJwksServer, testClock } from './helper.js'

const ed = generateTestKey('EdDSA')
const ec = generateTestKey('ES256')
const BATON_ALGORITHMS = new Set(['EdDSA', 'ES256'])

/** The reason `fn` refused with, or 'accepted'. */
function reasonOf (fn: () => unknown): string {
  try {
    fn()
    return 'accepted'
  } catch (error) {
    if (error instanceof VerifierError) return error.reason
    throw error
  }
}

const unsigned = (header: Record<string, unknown>): string => craftToken(header, claims(), () => 'c2lnbmF0dXJl')

t.test('checkTokenText refuses a header by itself: the alg allow-list, typ, the parameters and the kid', async (t) => {
  const header = { alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }
  t.equal(reasonOf(() => checkTokenText(unsigned(header), BATON_ALGORITHMS)), 'accepted', 'a header Baton writes')
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ...['none', 'None', 'NONE', 'HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES384', 'ES512', 'ES256K', 'EdDSA ', 'eddsa', ''].map((alg): [string, Record<string, unknown>, string] =>
      [`alg ${JSON.stringify(alg)}`, { ...header, alg }, 'algorithm']),
    ['alg missing', { typ: 'at+jwt', kid: ed.kid }, 'algorithm'],
    ['alg an array', { ...header, alg: ['EdDSA'] }, 'algorithm'],
    ['typ JWT', { ...header, typ: 'JWT' }, 'typ'],
    ['typ missing', { alg: 'EdDSA', kid: ed.kid }, 'typ'],
    ['typ at+jwt with a space', { ...header, typ: 'at+jwt ' }, 'typ'],
    ['jku', { ...header, jku: 'http://127.0.0.1:9/keys' }, 'header'],
    ['crit', { ...header, crit: ['exp'] }, 'header'],
    ['kid of 257 characters', { ...header, kid: 'k'.repeat(257) }, 'unknown_kid'],
    ['kid of 10,000 characters', { ...header, kid: 'k'.repeat(10_000) }, 'unknown_kid'],
    ['kid empty', { ...header, kid: '' }, 'unknown_kid'],
    ['kid a number', { ...header, kid: 7 }, 'unknown_kid']
  ]
  for (const [name, hostile, reason] of cases) {
    t.equal(reasonOf(() => checkTokenText(unsigned(hostile), BATON_ALGORITHMS)), reason, name)
  }
  t.equal(reasonOf(() => checkTokenText(unsigned(header), new Set(['ES256']))), 'algorithm', 'an allow-list narrowed to ES256 refuses EdDSA')
  t.equal(reasonOf(() => checkTokenText(unsigned({ ...header, kid: 'k'.repeat(256) }), BATON_ALGORITHMS)), 'accepted', 'a kid of 256 characters is still a kid')
})

t.test('checkTokenText refuses a token\'s text by itself: shape, canonical base64url, duplicate members, JSON objects', async (t) => {
  const header = { alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }
  const [h, p] = unsigned(header).split('.') as [string, string]
  const b64 = (text: string): string => Buffer.from(text).toString('base64url')
  const cases: Array<[string, string, string]> = [
    ['two segments', `${h}.${p}`, 'malformed'],
    ['four segments', `${h}.${p}.c2ln.c2ln`, 'malformed'],
    ['an empty signature', `${h}.${p}.`, 'malformed'],
    ['padding', `${h}.${p}.c2lnbg==`, 'malformed'],
    ['a signature with its unused low bits set', `${h}.${p}.c2lnbp`, 'encoding'],
    ['a header with its unused low bits set', `${withTrailingBits(h)}.${p}.c2ln`, 'encoding'],
    ['a header naming kid twice', `${b64(`{"alg":"EdDSA","typ":"at+jwt","kid":"${ed.kid}","kid":"other"}`)}.${p}.c2ln`, 'duplicate'],
    ['a payload naming sub twice, once escaped', `${h}.${b64('{"sub":"a","s\\u0075b":"b"}')}.c2ln`, 'duplicate'],
    ...['[]', '"at+jwt"', '42', 'null', 'true'].map((json): [string, string, string] => [`a header that is ${json}`, `${b64(json)}.${p}.c2ln`, 'malformed'])
  ]
  for (const [name, token, reason] of cases) t.equal(reasonOf(() => checkTokenText(token, BATON_ALGORITHMS)), reason, name)
})

t.test('checkClaims refuses iss and aud by itself: exact issuer, an audience string or an array of strings holding it', async (t) => {
  const check = (overrides: Record<string, unknown>): string => reasonOf(() => checkClaims(claims(overrides), ISSUER, AUDIENCE))
  t.equal(check({}), 'accepted', 'a claim set Baton issues')
  const refused: Record<string, Record<string, unknown>> = {
    'iss an array holding the issuer': { iss: [ISSUER] },
    'iss upper-cased': { iss: ISSUER.toUpperCase() },
    'iss with a trailing slash': { iss: `${ISSUER}/` },
    'iss missing': { iss: undefined },
    'aud an array with a number beside the audience': { aud: [AUDIENCE, 42] },
    'aud an array with an object beside the audience': { aud: [AUDIENCE, { aud: AUDIENCE }] },
    'aud an array with another array beside the audience': { aud: [AUDIENCE, [AUDIENCE]] },
    'aud an empty array': { aud: [] },
    'aud an array without the audience': { aud: ['another-api'] },
    'aud a number': { aud: 42 },
    'aud missing': { aud: undefined }
  }
  for (const [name, overrides] of Object.entries(refused)) t.equal(check(overrides), 'claims', name)
  for (const payload of [null, [], 'claims', 42]) {
    t.equal(reasonOf(() => checkClaims(payload, ISSUER, AUDIENCE)), 'malformed', `a payload that is ${JSON.stringify(payload)}`)
  }
  for (const aud of [AUDIENCE, [AUDIENCE], [AUDIENCE, 'another-api']]) t.equal(check({ aud }), 'accepted', `aud ${JSON.stringify(aud)}`)
})

t.test('a token over 8 KiB is refused before it is decoded, even one the real key signed', async (t) => {
  const clock = testClock()
  const verifier = createVerifier({ keys: [{ kid: ed.kid, publicKey: ed.publicKey }], issuer: ISSUER, audience: AUDIENCE, now: clock.now })
  const token = signToken(ed, claims({ padding: 'x'.repeat(9 * 1024) }, clock.now()))
  await t.rejects(verifier.verify(token), { statusCode: 401, reason: 'too_large', message: 'the access token is too large' })
})

t.test('a header refused by itself costs no key lookup: no key-set fetch, however many made-up kids', async (t) => {
  const clock = testClock()
  const jwks = await startJwksServer([ed, ec])
  t.teardown(jwks.close)
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url, now: clock.now })
  t.teardown(verifier.close)
  const attacker = generateTestKey('EdDSA', 'attacker')
  const hostile: Array<[string, Record<string, unknown>, string]> = [
    ...['none', 'HS256', 'RS256', 'PS256', 'ES384', 'ES512', 'ES256K'].map((alg, index): [string, Record<string, unknown>, string] =>
      [`alg ${alg}`, { alg, typ: 'at+jwt', kid: `made-up-${index}` }, 'algorithm']),
    ['typ JWT', { alg: 'EdDSA', typ: 'JWT', kid: 'made-up-typ' }, 'typ'],
    ['a jku header', { alg: 'EdDSA', typ: 'at+jwt', kid: 'made-up-jku', jku: 'http://127.0.0.1:9/keys' }, 'header'],
    ['a kid of 300 characters', { alg: 'EdDSA', typ: 'at+jwt', kid: 'k'.repeat(300) }, 'unknown_kid']
  ]
  for (const [name, header, reason] of hostile) {
    // Past the refetch interval every time: a kid looked up would fetch the key set.
    clock.advance(11_000)
    const token = craftToken(header, claims({}, clock.now()), (input) => signInput(attacker, input))
    const error = await verifier.verify(token).then(() => undefined, (caught: unknown) => caught)
    t.match(error, { statusCode: 401, error: 'invalid_token', reason }, `${name}: 401 invalid_token, ${reason}`)
    t.equal(jwks.hits(), 0, `${name}: the key set was not fetched`)
  }
  t.equal((await verifier.verify(signToken(ed, claims({}, clock.now())))).sub, 'user-1', 'a genuine token then fetches the keys and passes')
  t.equal(jwks.hits(), 1)
})

t.test('a kid fixes the algorithm before fast-jwt sees the token: the refusal is Baton\'s own, with no library error behind it', async (t) => {
  const clock = testClock()
  const verifier = createVerifier({
    keys: [ed, ec].map((key) => ({ kid: key.kid, publicKey: key.publicKey })), issuer: ISSUER, audience: AUDIENCE, now: clock.now
  })
  const crossed: Array<[string, string]> = [
    ['ES256 naming the Ed25519 key', craftToken({ alg: 'ES256', typ: 'at+jwt', kid: ed.kid }, claims({}, clock.now()), (input) => signInput(ec, input))],
    ['EdDSA naming the P-256 key', craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ec.kid }, claims({}, clock.now()), (input) => signInput(ed, input))]
  ]
  for (const [name, token] of crossed) {
    const error = await verifier.verify(token).then(() => undefined, (caught: unknown) => caught)
    t.match(error, { statusCode: 401, error: 'invalid_token', reason: 'algorithm', message: 'the access token algorithm is not accepted' }, name)
    t.equal((error as Error | undefined)?.cause, undefined, `${name}: refused by the kid's algorithm, not by fast-jwt`)
  }
})
