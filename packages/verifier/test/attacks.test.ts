// The hostile-token table against every adapter, over real sockets, and the
// core's reasons for each refusal.
import t, { type Test } from 'tap'
import { performance } from 'node:perf_hooks'
import { createVerifier, hasDuplicateMembers, VerifierError } from '../src/index.js'
import { ADAPTERS, startAdapterApp, type AdapterApp, type AdapterName } from './adapters.js'
import { acceptedAudiences, forgeries, withTrailingBits } from './forgeries.js'
import {
  AUDIENCE, ISSUER, assertOddAuthorizationHeadersWith, claims, craftToken, generateTestKey, signInput, signToken, startJwksServer, type JwksServer
} from './helper.js'

const ed = generateTestKey('EdDSA')
const ec = generateTestKey('ES256')

interface Harness {
  app: AdapterApp
  jwks: JwksServer
  /** Requests that reached the attacker's server (jku, x5u). */
  trapHits: () => number
  trap: string
}

/** One adapter's app, verifying against a JWKS on a real socket, as a user would set it up. */
async function harness (t: Test, name: AdapterName): Promise<Harness> {
  const jwks = await startJwksServer([ed, ec])
  t.teardown(jwks.close)
  let trapHits = 0
  const trapServer = await startJwksServer([generateTestKey('EdDSA', 'attacker')], {
    routes: (app) => { app.addHook('onRequest', async () => { trapHits += 1 }) }
  })
  t.teardown(trapServer.close)
  const app = await startAdapterApp(t, name, { issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url })
  return { app, jwks, trapHits: () => trapHits, trap: trapServer.url }
}

const WELL_FORMED_CHALLENGE = (error: string): RegExp => new RegExp(`^Bearer realm="baton", error="${error}", error_description="[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"$`)

for (const name of ADAPTERS) {
  t.test(`${name}: every forged, malformed or mis-claimed token is refused on every route, fetches nothing, never a 5xx`, async (t) => {
    const { app, jwks, trapHits, trap } = await harness(t, name)
    const genuine = claims({ scope: 'profile reports:read' })
    const control = signToken(ed, genuine)
    t.equal((await app.get('/me', `Bearer ${control}`)).status, 200, 'the genuine token passes')
    t.equal((await app.get('/reports', `Bearer ${control}`)).status, 200)

    const list = forgeries({ ed, ec, genuine, trap })
    const fetchesBefore = jwks.hits()
    const failures: string[] = []
    let slowest = 0
    for (const { kind, name: forgery, token, malformedHeader } of list) {
      for (const path of ['/me', '/reports']) {
        const started = performance.now()
        const answer = await app.get(path, `Bearer ${token}`)
        slowest = Math.max(slowest, performance.now() - started)
        if (token.length > 16 * 1024) {
          // Node refuses the header section before any handler runs.
          if (answer.status !== 431) failures.push(`${path} ${kind}: ${forgery} → ${answer.status}, not 431`)
          continue
        }
        const [status, error] = malformedHeader === true ? [400, 'invalid_request'] : [401, 'invalid_token']
        if (answer.status !== status || answer.error !== error || !WELL_FORMED_CHALLENGE(error).test(answer.challenge ?? '')) {
          failures.push(`${path} ${kind}: ${forgery} → ${answer.status} ${JSON.stringify(answer.body)} ${answer.challenge ?? ''}`)
        }
      }
    }
    t.same(failures, [], `all ${list.length} hostile tokens refused on both routes`)
    t.equal(trapHits(), 0, 'no jku, x5u or jwk made the app fetch anything')
    t.ok(jwks.hits() - fetchesBefore <= 1, `made-up kids caused ${jwks.hits() - fetchesBefore} JWKS fetch (rate-limited to one per interval)`)
    // A slow path (a pathological parse, a wait on some fetch) costs seconds; each refusal takes
    // milliseconds, and a loaded machine can add most of a second to any one of hundreds.
    t.ok(slowest < 3000, `the slowest refusal took ${slowest.toFixed(1)} ms`)
    t.equal((await app.get('/me', `Bearer ${control}`)).status, 200, 'and the genuine token still passes afterwards')
  })

  t.test(`${name}: an aud that is the audience, or an array of strings containing it, is accepted`, async (t) => {
    const { app } = await harness(t, name)
    for (const aud of acceptedAudiences(AUDIENCE)) {
      const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, claims({ aud }), (input) => signInput(ed, input))
      const answer = await app.get('/me', `Bearer ${token}`)
      t.equal(answer.status, 200, JSON.stringify(aud))
      t.same(answer.body.aud, aud, 'the claims keep the audience as the token states it')
    }
  })

  t.test(`${name}: odd Authorization headers get RFC 6750 answers`, async (t) => {
    const { app } = await harness(t, name)
    await assertOddAuthorizationHeadersWith(t, async (authorization) => await app.get('/me', authorization), signToken(ed, claims()))
  })
}

t.test('each refusal names its reason', async (t) => {
  const jwks = await startJwksServer([ed, ec])
  t.teardown(jwks.close)
  const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url })
  t.teardown(verifier.close)
  const reasons = new Set<string>()
  const notRefused: string[] = []
  for (const { name, token } of forgeries({ ed, ec, genuine: claims(), trap: 'http://127.0.0.1:9/never' })) {
    const error = await verifier.verify(token).then(() => undefined, (caught: unknown) => caught)
    if (error instanceof VerifierError) reasons.add(error.reason)
    else notRefused.push(`${name}: ${error === undefined ? 'accepted' : String(error)}`)
  }
  t.same(notRefused, [], 'every forgery is refused with a VerifierError')
  for (const reason of ['algorithm', 'header', 'encoding', 'duplicate', 'unknown_kid', 'signature', 'malformed', 'claims', 'typ', 'expired', 'not_yet_valid', 'issued_in_future', 'too_large']) {
    t.ok(reasons.has(reason), `some token was refused for ${reason}`)
  }
})

t.test('another spelling of a verified, cached token is checked afresh and refused', async (t) => {
  const verifier = createVerifier({ keys: [{ kid: ed.kid, publicKey: ed.publicKey }], issuer: ISSUER, audience: AUDIENCE })
  const token = signToken(ed, claims())
  const [h, p, s] = token.split('.') as [string, string, string]
  for (let i = 0; i < 3; i++) t.equal((await verifier.verify(token)).sub, 'user-1')
  const respelled = `${h}.${p}.${withTrailingBits(s)}`
  // The premise, not the subject: the test's own helper must give another spelling of the same bytes.
  if (respelled === token || !Buffer.from(respelled.split('.')[2]!, 'base64url').equals(Buffer.from(s, 'base64url'))) {
    throw new Error('withTrailingBits must respell the signature without changing its bytes')
  }
  await t.rejects(verifier.verify(respelled), { statusCode: 401, reason: 'encoding', message: 'the access token is not canonical base64url' })
})

t.test('hasDuplicateMembers reads names as JSON does', async (t) => {
  t.equal(hasDuplicateMembers('{"a":1,"b":2}'), false)
  t.equal(hasDuplicateMembers('{"a":1,"a":2}'), true)
  t.equal(hasDuplicateMembers('{"a":1,"\\u0061":2}'), true, 'escaped spellings are the same name')
  t.equal(hasDuplicateMembers('{"a":{"b":1},"b":{"a":1}}'), false, 'each object has its own names')
  t.equal(hasDuplicateMembers('{"a":[{"x":1},{"x":1}]}'), false, 'array elements are separate objects')
  t.equal(hasDuplicateMembers('{"a":[{"x":1,"x":2}]}'), true, 'at any depth')
  t.equal(hasDuplicateMembers('{"a":"b","c":"a"}'), false, 'values are not names')
  t.equal(hasDuplicateMembers('{"a\\"":1,"a":2}'), false, 'an escaped quote does not end a name')
  t.equal(hasDuplicateMembers('{"k":"\\\\","k":1}'), true, 'an escaped backslash does end a value')
  t.equal(hasDuplicateMembers('["a","a"]'), false)
  t.equal(hasDuplicateMembers('{"\\x":1}'), false, 'not JSON: left to the parser')
})
