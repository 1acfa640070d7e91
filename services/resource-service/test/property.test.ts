// Property-based fuzzing of the resource-service: whatever arrives, the answer
// is a correct 200 or a well-formed RFC 6750 4xx, never a 5xx. fast-check
// prints the seed and the shrunk counter-example of any failure; rerun it with
// `FC_SEED=<seed> pnpm exec tap <this file>`.
import t from 'tap'
import fc from 'fast-check'
import { acceptableClaims, applyEdit, claimEdits, fuzzOptions, headerValue, mutation } from '../../../packages/verifier/test/arbitraries.js'
import type { LightMyRequestResponse } from 'fastify'
import { setup, claims, signToken, craftToken, signInput, ISSUER, AUDIENCE, BARE_CHALLENGES } from './helper.js'

const RUNS = 300
const options = fuzzOptions(RUNS)
const SKEW_S = 5

/** A 2xx, or a 4xx whose body and challenge agree on an RFC 6750 (or RFC 9449) error; anything else is a defect. */
function wellFormed (response: LightMyRequestResponse): string | undefined {
  const { statusCode: status } = response
  if (status >= 500) return `${status} ${response.body.slice(0, 200)}`
  if (status < 400) return undefined
  let body: Record<string, unknown>
  try { body = response.json() } catch { return `${status} with a body that is not JSON` }
  if (status === 404 || status === 405 || status === 415 || status === 413) return typeof body.error === 'string' ? undefined : `${status} without an error code`
  const challenge = String(response.headers['www-authenticate'] ?? '')
  if (!challenge.startsWith('Bearer realm="baton"') && !challenge.startsWith('DPoP realm="baton"')) return `${status} without a Bearer or DPoP challenge`
  // RFC 6750 §3.1: no credentials, no error code; otherwise the body and the challenge name the same one.
  if (body.error === undefined) return status === 401 && challenge === BARE_CHALLENGES ? undefined : `${status} without an error code`
  if (!challenge.includes(`error="${String(body.error)}"`)) return `${status}: body says ${String(body.error)}, challenge says ${challenge}`
  const expected: Record<string, number> = { invalid_request: 400, invalid_token: 401, insufficient_scope: 403, invalid_dpop_proof: 401, use_dpop_nonce: 401 }
  return expected[String(body.error)] === status ? undefined : `${status} with error ${String(body.error)}`
}

t.test('any Authorization header: 200 only for the genuine token, else a well-formed 4xx', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  const token = signToken(ed!, claims())
  const authorization = fc.oneof(
    headerValue(300), headerValue(300).map((value) => `Bearer ${value}`), mutation(token).map((value) => `Bearer ${value}`),
    headerValue(300).map((value) => `DPoP ${value}`), mutation(token).map((value) => `DPoP ${value}`)
  )
  await fc.assert(fc.asyncProperty(fc.constantFrom('/me', '/reports'), authorization, async (url, value) => {
    const response = await app.inject({ url, headers: { authorization: value } })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${url} ${JSON.stringify(value)} → ${defect}`)
    if (response.statusCode === 200 && value.trim().split(/\s+/)[1] !== token) throw new Error(`${JSON.stringify(value)} was accepted`)
  }), options)
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'the genuine token still works')
})

t.test('any claim set signed with the real key: accepted exactly when every claim is right', async (t) => {
  const { app, keys: [ed], clock } = await setup(t)
  const nowS = Math.floor(clock.now() / 1000)
  let accepted = 0
  await fc.assert(fc.asyncProperty(claimEdits(nowS, { issuer: ISSUER, audience: AUDIENCE }), fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), async (edit, extra) => {
    const payload = applyEdit({ ...extra, ...claims({}, clock.now()) }, edit)
    // Signed by hand: fast-jwt's signer would fill in iat and refuse some of these shapes.
    const token = craftToken({ alg: 'EdDSA', typ: 'at+jwt', kid: ed!.kid }, payload, (input) => signInput(ed!, input))
    const response = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${JSON.stringify(payload)} → ${defect}`)
    const expected = acceptableClaims(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>, nowS, { issuer: ISSUER, audience: AUDIENCE, skewS: SKEW_S }) ? 200 : 401
    if (response.statusCode !== expected) throw new Error(`${JSON.stringify(payload)} → ${response.statusCode}, expected ${expected}: ${response.body}`)
    if (expected === 200) accepted += 1
  }), options)
  t.ok(accepted > 0, `${accepted} of ${RUNS} generated claim sets were right and accepted; the rest refused`)
})

t.test('any header and payload JSON signed with the real key: never a 5xx, never a foreign header accepted', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  const header = fc.record({
    alg: fc.oneof(fc.constant('EdDSA'), fc.jsonValue({ maxDepth: 1 })),
    typ: fc.oneof(fc.constant('at+jwt'), fc.jsonValue({ maxDepth: 1 })),
    kid: fc.oneof(fc.constant(ed!.kid), fc.jsonValue({ maxDepth: 1 }))
  }, { requiredKeys: [] }).chain((known) => fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }).map((extra) => ({ ...extra, ...known })))
  await fc.assert(fc.asyncProperty(header, fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(claims())), async (head, body) => {
    const input = `${Buffer.from(JSON.stringify(head)).toString('base64url')}.${Buffer.from(JSON.stringify(body) ?? '').toString('base64url')}`
    const response = await app.inject({ url: '/me', headers: { authorization: `Bearer ${input}.${signInput(ed!, input)}` } })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${JSON.stringify(head)} ${JSON.stringify(body)} → ${defect}`)
    const honest = Object.keys(head).every((name) => ['alg', 'typ', 'kid'].includes(name)) && head.alg === 'EdDSA' && head.typ === 'at+jwt' && head.kid === ed!.kid
    if (response.statusCode === 200 && !honest) throw new Error(`header ${JSON.stringify(head)} was accepted`)
  }), options)
  t.pass(`${RUNS} headers and payloads`)
})

t.test('any method, path and body: a 4xx for what does not exist, never a 5xx', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  const token = signToken(ed!, claims({ scope: 'profile reports:read' }))
  const path = fc.array(fc.oneof(fc.constantFrom('me', 'reports', 'healthz', 'readyz', 'metrics', '..', '%00', '%ff', '%2e%2e', 'docs', 'openapi.json'), fc.webSegment()), { maxLength: 4 })
  const CONTENT_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=z', 'application/octet-stream']
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), path, fc.constantFrom(...CONTENT_TYPES), fc.uint8Array({ maxLength: 200 }), fc.boolean(),
    async (method, segments, type, bytes, withToken) => {
      const url = `/${segments.join('/')}`
      const response = await app.inject({
        method: method as 'GET',
        url,
        headers: { 'content-type': type, ...(withToken ? { authorization: `Bearer ${token}` } : {}) },
        ...(method === 'GET' || method === 'HEAD' ? {} : { payload: Buffer.from(bytes) })
      })
      if (response.statusCode >= 500) throw new Error(`${method} ${url} → ${response.statusCode} ${response.body.slice(0, 200)}`)
    }), options)
  t.equal((await app.inject({ url: '/reports', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'the genuine token still works')
})
