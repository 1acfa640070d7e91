// Property-based fuzzing of every adapter over a real socket: whatever
// arrives, the answer is a correct 200 or a well-formed RFC 6750 4xx, never
// a 5xx. fast-check prints the seed and the shrunk counter-example of any
// failure; rerun it with `FC_SEED=<seed> pnpm exec tap <this file>`.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { ADAPTERS, startAdapterApp, type AdapterApp, type AdapterName } from './adapters.js'
import { acceptableClaims, applyEdit, claimEdits, fuzzOptions, headerValue, mutation } from './arbitraries.js'
import { AUDIENCE, ISSUER, claims, craftToken, generateTestKey, signInput, signToken, type BearerAnswer } from './helper.js'

const RUNS = 100
const options = fuzzOptions(RUNS)
const SKEW_S = 5
const ed = generateTestKey('EdDSA')

/** A 2xx, or a 4xx whose body and challenge agree on an RFC 6750 error; anything else is a defect. */
function wellFormed (answer: BearerAnswer): string | undefined {
  const { status, error } = answer
  if (status >= 500) return `${status}`
  if (status < 400) return undefined
  const challenge = answer.challenge ?? ''
  if (!challenge.startsWith('Bearer realm="baton"')) return `${status} without a Bearer challenge`
  // RFC 6750 §3.1: no credentials, no error code; otherwise the body and the challenge name the same one.
  if (error === undefined) return status === 401 && challenge === 'Bearer realm="baton"' ? undefined : `${status} without an error code`
  if (!challenge.includes(`error="${error}"`)) return `${status}: body says ${error}, challenge says ${challenge}`
  const expected: Record<string, number> = { invalid_request: 400, invalid_token: 401, insufficient_scope: 403 }
  return expected[error] === status ? undefined : `${status} with error ${error}`
}

/** The adapter's app, on a clock that stands still at `nowMs`: no generated time lands on the edge while the test runs. */
async function start (t: Test, name: AdapterName, nowMs = Date.now()): Promise<AdapterApp> {
  return await startAdapterApp(t, name, { keys: [{ kid: ed.kid, publicKey: ed.publicKey }], issuer: ISSUER, audience: AUDIENCE, clockSkew: SKEW_S, now: () => nowMs })
}

for (const name of ADAPTERS) {
  t.test(`${name}: any Authorization header gets 200 only for the genuine token, else a well-formed 4xx`, async (t) => {
    const app = await start(t, name)
    const token = signToken(ed, claims())
    const authorization = fc.oneof(headerValue(300), headerValue(300).map((value) => `Bearer ${value}`), mutation(token).map((value) => `Bearer ${value}`))
    await fc.assert(fc.asyncProperty(fc.constantFrom('/me', '/reports'), authorization, async (path, value) => {
      const answer = await app.get(path, value)
      const defect = wellFormed(answer)
      if (defect !== undefined) throw new Error(`${path} ${JSON.stringify(value)} → ${defect}`)
      // fetch trims the value's ends, as a proxy might.
      if (answer.status === 200 && value.trim().split(/\s+/)[1] !== token) throw new Error(`${JSON.stringify(value)} was accepted`)
    }), options)
    t.equal((await app.get('/me', `Bearer ${token}`)).status, 200, 'the genuine token still works')
  })

  t.test(`${name}: any claim set signed with the real key is accepted exactly when every claim is right`, async (t) => {
    const now = Date.now()
    const app = await start(t, name, now)
    const nowS = Math.floor(now / 1000)
    let accepted = 0
    const extra = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
    await fc.assert(fc.asyncProperty(claimEdits(nowS, { issuer: ISSUER, audience: AUDIENCE }), extra, async (edit, more) => {
      const payload = applyEdit({ ...more, ...claims({}, now) }, edit)
      // Signed by hand: fast-jwt's signer would fill in iat and refuse some of these shapes.
      const answer = await app.get('/me', `Bearer ${craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }, payload, (input) => signInput(ed, input))}`)
      const defect = wellFormed(answer)
      if (defect !== undefined) throw new Error(`${JSON.stringify(payload)} → ${defect}`)
      const expected = acceptableClaims(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>, nowS, { issuer: ISSUER, audience: AUDIENCE, skewS: SKEW_S }) ? 200 : 401
      if (answer.status !== expected) throw new Error(`${JSON.stringify(payload)} → ${answer.status}, expected ${expected}: ${JSON.stringify(answer.body)}`)
      if (expected === 200) accepted += 1
    }), options)
    t.ok(accepted > 0, `${accepted} of ${RUNS} generated claim sets were right and accepted; the rest refused`)
  })

  t.test(`${name}: any header and payload JSON signed with the real key: never a 5xx, never a foreign header accepted`, async (t) => {
    const app = await start(t, name)
    const header = fc.record({
      alg: fc.oneof(fc.constant('EdDSA'), fc.jsonValue({ maxDepth: 1 })),
      typ: fc.oneof(fc.constant('at+jwt'), fc.jsonValue({ maxDepth: 1 })),
      kid: fc.oneof(fc.constant(ed.kid), fc.jsonValue({ maxDepth: 1 }))
    }, { requiredKeys: [] }).chain((known) => fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }).map((more) => ({ ...more, ...known })))
    await fc.assert(fc.asyncProperty(header, fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(claims())), async (head, body) => {
      const input = `${Buffer.from(JSON.stringify(head)).toString('base64url')}.${Buffer.from(JSON.stringify(body) ?? '').toString('base64url')}`
      const answer = await app.get('/me', `Bearer ${input}.${signInput(ed, input)}`)
      const defect = wellFormed(answer)
      if (defect !== undefined) throw new Error(`${JSON.stringify(head)} ${JSON.stringify(body)} → ${defect}`)
      const honest = Object.keys(head).every((key) => ['alg', 'typ', 'kid'].includes(key)) && head.alg === 'EdDSA' && head.typ === 'at+jwt' && head.kid === ed.kid
      if (answer.status === 200 && !honest) throw new Error(`header ${JSON.stringify(head)} was accepted`)
    }), options)
    t.pass(`${RUNS} headers and payloads`)
  })
}
