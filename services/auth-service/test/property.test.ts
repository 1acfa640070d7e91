// Property-based fuzzing: whatever arrives, the answer is a correct 2xx or a
// well-formed 4xx with an RFC 6749 error body, never a 5xx. fast-check prints
// the seed and the shrunk counter-example of any failure; rerun it with
// `FC_SEED=<seed> pnpm exec tap <this file>`.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { fuzzOptions, headerValue, mutation } from '../../../packages/verifier/test/arbitraries.js'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { setup, register, login, refresh, bearer } from './helper.js'

const RUNS = 150
const options = fuzzOptions(RUNS)

const SECRET = 'fuzzing-confidential-client-secret'
const ENV = {
  RATE_LIMIT_ACCOUNT_FAILURES: '1000000',
  RATE_LIMIT_IP_FAILURES: '1000000',
  RATE_LIMIT_IP_ATTEMPTS: '1000000',
  CLIENTS: JSON.stringify([
    { client_id: 'baton', grant_types: ['password', 'refresh_token'] },
    { client_id: 'svc', client_secret: SECRET, grant_types: ['client_credentials'], scope: 'reports:read', introspection: true }
  ])
}

/** A 4xx with `{error, error_description}` strings, or a 2xx; anything else is a defect. */
function wellFormed (response: LightMyRequestResponse): string | undefined {
  if (response.statusCode >= 500) return `${response.statusCode} ${response.body.slice(0, 200)}`
  if (response.statusCode >= 400) {
    let body: unknown
    try { body = response.json() } catch { return `${response.statusCode} with a body that is not JSON` }
    const { error, error_description: description } = (body ?? {}) as Record<string, unknown>
    // RFC 6750 §3.1: a request with no credentials gets a bare challenge and no error code (on routes that take DPoP, a DPoP one beside it).
    const bareChallenge = response.statusCode === 401 && error === undefined && /^Bearer realm="baton"$/.test(String(response.headers['www-authenticate']))
    if ((typeof error !== 'string' && !bareChallenge) || (description !== undefined && typeof description !== 'string')) return `${response.statusCode} without an error code: ${response.body.slice(0, 200)}`
    if (response.statusCode === 429 && response.headers['retry-after'] === undefined) return '429 without Retry-After'
  }
  return undefined
}

const FIELDS = ['grant_type', 'username', 'password', 'refresh_token', 'scope', 'client_id', 'client_secret', 'token', 'token_type_hint',
  'current_password', 'new_password', 'keep_current_session', '__proto__', 'constructor']
const MEANINGFUL = ['password', 'refresh_token', 'client_credentials', 'fuzzed', 'baton', 'svc', SECRET, 'profile', 'reports:read',
  'correct horse battery', '', ' ', '\u0000', 'a'.repeat(600)]

/** Objects that look like requests: known field names, any values, and extra keys. */
const requestBody = fc.dictionary(
  fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 12 })),
  fc.oneof(fc.constantFrom<unknown>(...MEANINGFUL), fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 3 })),
  { maxKeys: 8 }
)

const CONTENT_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/json; charset=latin1',
  'multipart/form-data; boundary=z', 'application/octet-stream', 'APPLICATION/JSON', 'application/x-www-form-urlencoded; charset=utf-8']

async function fuzzed (t: Test): Promise<{ app: FastifyInstance, access: string, refreshToken: string, password: string }> {
  const { app } = await setup(t, ENV)
  const user = await register(app, 'fuzzed')
  const tokens = await login(app, 'fuzzed', user.password)
  return { app, access: tokens.access_token, refreshToken: tokens.refresh_token, password: user.password }
}

t.test('any JSON or form body at any endpoint that takes one: never a 5xx', async (t) => {
  const { app, access } = await fuzzed(t)
  const routes = ['/oauth/token', '/users', '/oauth/revoke', '/oauth/introspect', '/users/me/password']
  await fc.assert(fc.asyncProperty(fc.constantFrom(...routes), requestBody, fc.boolean(), fc.boolean(), async (url, body, asForm, withToken) => {
    const payload = asForm
      ? new URLSearchParams(Object.entries(body).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)])).toString()
      : JSON.stringify(body)
    const response = await app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': asForm ? 'application/x-www-form-urlencoded' : 'application/json', ...(withToken ? bearer(access) : {}) },
      payload
    })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${url} ${payload.slice(0, 200)} → ${defect}`)
    if (response.statusCode === 200 && url === '/oauth/token') {
      const tokens = response.json<Record<string, unknown>>()
      if (typeof tokens.access_token !== 'string' || tokens.token_type !== 'Bearer') throw new Error(`a 200 without tokens: ${response.body}`)
    }
  }), options)
  t.pass(`${RUNS} bodies`)
})

t.test('any bytes with any content type: never a 5xx', async (t) => {
  const { app } = await fuzzed(t)
  await fc.assert(fc.asyncProperty(fc.constantFrom('/oauth/token', '/users', '/oauth/revoke'), fc.constantFrom(...CONTENT_TYPES), fc.uint8Array({ maxLength: 300 }), async (url, type, bytes) => {
    const response = await app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload: Buffer.from(bytes) })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${url} ${type} ${Buffer.from(bytes).toString('hex').slice(0, 200)} → ${defect}`)
  }), options)
  t.pass('bytes')
})

t.test('any Authorization header at the Bearer endpoints: 401, 400 or the right 200', async (t) => {
  const { app, access } = await fuzzed(t)
  await fc.assert(fc.asyncProperty(fc.oneof(headerValue(), headerValue().map((value) => `Bearer ${value}`), mutation(access).map((token) => `Bearer ${token}`)), async (authorization) => {
    const response = await app.inject({ url: '/sessions', headers: { authorization } })
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${JSON.stringify(authorization)} → ${defect}`)
    if (response.statusCode === 200 && authorization.trim().split(/\s+/)[1] !== access) throw new Error(`${JSON.stringify(authorization)} was accepted`)
  }), options)
  t.equal((await app.inject({ url: '/sessions', headers: bearer(access) })).statusCode, 200, 'the genuine token still works')
})

t.test('a mutated refresh or access token is never accepted as a refresh token, and spends nothing', async (t) => {
  const { app, access, refreshToken } = await fuzzed(t)
  await fc.assert(fc.asyncProperty(fc.oneof(mutation(refreshToken), mutation(access)), async (token) => {
    fc.pre(token !== refreshToken)
    const response = await refresh(app, token)
    const defect = wellFormed(response)
    if (defect !== undefined) throw new Error(`${token} → ${defect}`)
    if (response.statusCode !== 400) throw new Error(`${token} → ${response.statusCode} ${response.body}`)
  }), options)
  t.equal((await refresh(app, refreshToken)).statusCode, 200, 'the genuine refresh token was neither spent nor revoked')
})

t.test('any method and path: a 4xx for what does not exist', async (t) => {
  const { app } = await fuzzed(t)
  const path = fc.array(fc.oneof(fc.constantFrom('oauth', 'token', 'users', 'me', 'sessions', '.well-known', '..', '%00', '%ff', '%2e%2e', 'docs', 'openapi.json'), fc.webSegment()), { maxLength: 4 })
  await fc.assert(fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), path, async (method, segments) => {
    const url = `/${segments.join('/')}`
    const response = await app.inject({ method: method as 'GET', url })
    if (response.statusCode >= 500) throw new Error(`${method} ${url} → ${response.statusCode} ${response.body.slice(0, 200)}`)
  }), options)
  t.pass('paths')
})
