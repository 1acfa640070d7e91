import t, { type Test } from 'tap'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import { errorHandlerPlugin, metricsPlugin } from '@baton/service-kit'
import { createJwksKeySource, verifierPlugin } from '../src/index.js'
import { hasDuplicateMembers } from '../src/plugin.js'
import { AUDIENCE, ISSUER, claims, generateTestKey, signToken, startJwksServer, type JwksServer } from './helper.js'
import { forgeries, withTrailingBits } from './forgeries.js'

const ed = generateTestKey('EdDSA')
const ec = generateTestKey('ES256')

interface Harness {
  app: FastifyInstance
  jwks: JwksServer
  /** Requests that reached the attacker's server (jku, x5u). */
  trapHits: () => number
  trap: string
}

/** The verifier as a service runs it: keys from a JWKS on a real socket, errors through service-kit. */
async function harness (t: Test): Promise<Harness> {
  const jwks = await startJwksServer([ed, ec])
  let trapHits = 0
  const trapServer = await startJwksServer([generateTestKey('EdDSA', 'attacker')], {
    routes: (app) => { app.addHook('onRequest', async () => { trapHits += 1 }) }
  })
  const keySource = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 60_000 })
  await keySource.refresh()
  const app = Fastify({ logger: false })
  await app.register(errorHandlerPlugin)
  await app.register(metricsPlugin, { prefix: 'test_' })
  await app.register(verifierPlugin, { keySource, issuer: ISSUER, audience: AUDIENCE, clockSkewSeconds: 5 })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))
  await app.ready()
  t.teardown(async () => {
    keySource.close()
    await app.close()
    await jwks.close()
    await trapServer.close()
  })
  return { app, jwks, trapHits: () => trapHits, trap: trapServer.url }
}

t.test('every forged, malformed or mis-claimed token gets 401 invalid_token, fast, and fetches nothing', async (t) => {
  const { app, jwks, trapHits, trap } = await harness(t)
  const genuine = claims()
  const control = signToken(ed, genuine)
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${control}` } })).statusCode, 200, 'the genuine token passes')

  const list = forgeries({ ed, ec, genuine, trap })
  t.ok(list.length > 150, `${list.length} hostile tokens`)
  const fetchesBefore = jwks.hits()
  let slowest = 0
  for (const { kind, name, token, malformedHeader } of list) {
    const started = performance.now()
    const response = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
    slowest = Math.max(slowest, performance.now() - started)
    const [status, error] = malformedHeader === true ? [400, 'invalid_request'] : [401, 'invalid_token']
    t.equal(response.statusCode, status, `${kind}: ${name}`)
    t.equal(response.json<{ error: string }>().error, error, `${kind}: ${name}`)
    t.match(response.headers['www-authenticate'], new RegExp(`^Bearer realm="[^"]*", error="${error}", error_description="[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"$`), `${kind}: ${name}: a well-formed challenge`)
  }
  t.equal(trapHits(), 0, 'no jku, x5u or jwk made the service fetch anything')
  t.ok(jwks.hits() - fetchesBefore <= 1, `made-up kids caused ${jwks.hits() - fetchesBefore} JWKS fetch (rate-limited to one per interval)`)
  t.ok(slowest < 1000, `the slowest refusal took ${slowest.toFixed(1)} ms`)

  const metrics = (await app.inject('/metrics')).body
  for (const reason of ['algorithm', 'header', 'encoding', 'duplicate', 'unknown_kid', 'signature', 'malformed', 'claims', 'typ', 'expired', 'not_yet_valid', 'issued_in_future', 'too_large']) {
    t.match(metrics, new RegExp(`test_verify_failures_total\\{reason="${reason}"\\} [1-9]|baton_verify_failures_total\\{reason="${reason}"\\} [1-9]`), `some token was refused for ${reason}`)
  }
})

t.test('another spelling of a verified, cached token is checked afresh and refused', async (t) => {
  const { app } = await harness(t)
  const token = signToken(ed, claims())
  const [h, p, s] = token.split('.') as [string, string, string]
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  const respelled = `${h}.${p}.${withTrailingBits(s)}`
  t.not(respelled, token)
  t.same(Buffer.from(respelled.split('.')[2]!, 'base64url'), Buffer.from(s, 'base64url'), 'the same signature bytes')
  const response = await app.inject({ url: '/me', headers: { authorization: `Bearer ${respelled}` } })
  t.equal(response.statusCode, 401)
  t.equal(response.json<{ error_description: string }>().error_description, 'the access token is not canonical base64url')
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
})
