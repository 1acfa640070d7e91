// The Express adapter's own behaviour, on Express 5 and Express 4; what every
// adapter answers is in attacks.test.ts and property.test.ts.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express, { type ErrorRequestHandler } from 'express'
import express4 from 'express4'
import { BatonError, createVerifier, type VerifierOptions } from '../src/index.js'
import { expressVerifier, type ExpressVerifierOptions } from '../src/express.js'
import { AUDIENCE, ISSUER, claims, generateTestKey, signToken } from './helper.js'

const ed = generateTestKey('EdDSA')
const keys = [{ kid: ed.kid, publicKey: ed.publicKey }]

/** An Express app with /me, /reports (after /me's middleware ran) and an error handler that shows what reached it. */
async function serve (t: Test, version: 4 | 5, options: Partial<VerifierOptions> | ExpressVerifierOptions = {}): Promise<{ url: string, verified: () => number }> {
  const baton = expressVerifier('verifier' in options ? options : { keys, issuer: ISSUER, audience: AUDIENCE, ...options })
  let verified = 0
  const app = (version === 5 ? express : express4 as unknown as typeof express)()
  app.use('/me', baton.authenticate, (_req, _res, next) => { verified += 1; next() })
  app.get('/me', (req, res) => { res.json({ sub: req.auth?.sub }) })
  app.get('/me/reports', baton.requireScope('reports:read', 'reports:list'), (req, res) => { res.json({ sub: req.auth?.sub }) })
  const handler: ErrorRequestHandler = (error: BatonError, _req, res, _next) => { res.status(error.statusCode).json({ reached: 'error handler', code: error.code }) }
  app.use(handler)
  const server = createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { baton.close(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, verified: () => verified }
}

const get = async (url: string, token?: string): Promise<Response> => await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

for (const version of [5, 4] as const) {
  t.test(`express ${version}: requireScope after authenticate checks the scopes of the claims already verified`, async (t) => {
    const { url, verified } = await serve(t, version)
    const both = await get(`${url}/me/reports`, signToken(ed, claims({ scope: 'reports:list reports:read' })))
    t.equal(both.status, 200)
    t.same(await both.json(), { sub: 'user-1' })
    const one = await get(`${url}/me/reports`, signToken(ed, claims({ scope: 'reports:read' })))
    t.equal(one.status, 403)
    t.equal(one.headers.get('www-authenticate'), 'Bearer realm="baton", error="insufficient_scope", error_description="the access token lacks the scope reports:read reports:list", scope="reports:read reports:list"')
    t.equal(one.headers.get('content-type'), 'application/json; charset=utf-8')
    t.same(await one.json(), { error: 'insufficient_scope', error_description: 'the access token lacks the scope reports:read reports:list' })
    t.equal(verified(), 2, 'each request verified once')
  })

  t.test(`express ${version}: a refusal is answered by the middleware; a key-set outage goes to the app's error handler`, async (t) => {
    const refused = await get(`${(await serve(t, version)).url}/me`)
    t.equal(refused.status, 401)
    t.equal(refused.headers.get('www-authenticate'), 'Bearer realm="baton"')
    t.equal(refused.headers.get('cache-control'), 'no-store')
    t.same(await refused.json(), { error_description: 'an access token is required' })

    const { url } = await serve(t, version, { keys: undefined, keySource: { getKey: async () => { throw new Error('disk on fire') }, ready: () => true } })
    const outage = await get(`${url}/me`, signToken(ed, claims()))
    t.equal(outage.status, 503)
    t.same(await outage.json(), { reached: 'error handler', code: 'BATON_UNAVAILABLE' })
  })
}

t.test('the realm and onRefused options, and a verifier shared between apps', async (t) => {
  const verifier = createVerifier({ keys, issuer: ISSUER, audience: AUDIENCE })
  t.teardown(verifier.close)
  const reasons: string[] = []
  const { url } = await serve(t, 5, { verifier, realm: 'reports-api', onRefused: (error) => { reasons.push(error.reason) } })
  t.equal((await get(`${url}/me`)).headers.get('www-authenticate'), 'Bearer realm="reports-api"')
  t.equal((await get(`${url}/me`, 'a.b.c')).status, 401)
  t.same(reasons, ['missing', 'malformed'])
  const token = signToken(ed, claims())
  t.equal((await get(`${url}/me`, token)).status, 200)
  t.notOk(verifier.check(token) instanceof Promise, 'the token is in the shared verifier\'s cache')
})

t.test('bad options throw when the middleware is made', async (t) => {
  t.throws(() => expressVerifier({ keys, issuer: ISSUER, audience: '' }), /options\.audience/)
  t.throws(() => expressVerifier({ keys, issuer: ISSUER, audience: AUDIENCE }).requireScope('two words'), /not a single RFC 6749 scope/)
})
