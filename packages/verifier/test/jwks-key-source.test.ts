import t from 'tap'
import { createPublicKey } from 'node:crypto'
import { Readable } from 'node:stream'
import { createJwksKeySource } from '../src/index.js'
import { generateTestKey, startJwksServer, testClock } from './helper.js'

t.test('loads Ed25519 and P-256 keys as PEM, and is ready only then', async (t) => {
  const ed = generateTestKey('EdDSA')
  const ec = generateTestKey('ES256')
  const jwks = await startJwksServer([ed, ec])
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url })
  t.teardown(source.close)

  t.equal(source.ready(), false)
  await source.refresh()
  t.equal(source.ready(), true)
  const edPem = await source.getKey(ed.kid)
  const ecPem = await source.getKey(ec.kid)
  t.type(edPem, 'string', 'a PEM string, so @fastify/jwt can cache one verifier per key')
  t.ok(createPublicKey(edPem!).equals(ed.publicKey))
  t.ok(createPublicKey(ecPem!).equals(ec.publicKey))
  t.equal(jwks.hits(), 1)
})

t.test('keeps only public signing keys Baton can verify with', async (t) => {
  const good = generateTestKey('EdDSA', 'good')
  const withPrivate = generateTestKey('EdDSA', 'with-private')
  withPrivate.jwk = { ...withPrivate.privateKey.export({ format: 'jwk' }), kid: 'with-private' }
  const noKid = generateTestKey('EdDSA')
  delete noKid.jwk.kid
  const encryption = generateTestKey('ES256', 'enc')
  encryption.jwk.use = 'enc'
  const wrongAlg = generateTestKey('ES256', 'wrong-alg')
  wrongAlg.jwk.alg = 'ES384'
  const p384 = generateTestKey('ES256', 'p384')
  p384.jwk = { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'AAAA', kid: 'p384' }
  const oct = generateTestKey('EdDSA', 'oct')
  oct.jwk = { kty: 'oct', k: 'c2VjcmV0', kid: 'oct' }
  const rsa = generateTestKey('EdDSA', 'rsa')
  rsa.jwk = { kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'rsa' }
  const garbage = generateTestKey('EdDSA', 'garbage')
  garbage.jwk = { kty: 'OKP', crv: 'Ed25519', x: 'not a point', kid: 'garbage' }
  const verifyOnly = generateTestKey('EdDSA', 'sign-only-ops')
  verifyOnly.jwk.key_ops = ['sign']

  const jwks = await startJwksServer([withPrivate, noKid, encryption, wrongAlg, p384, oct, rsa, garbage, verifyOnly, good])
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 60_000 })
  t.teardown(source.close)
  await source.refresh()

  t.type(await source.getKey('good'), 'string')
  for (const kid of ['with-private', 'enc', 'wrong-alg', 'p384', 'oct', 'rsa', 'garbage', 'sign-only-ops']) {
    t.equal(await source.getKey(kid), undefined, kid)
  }
})

t.test('a key set with no usable key fails and keeps the previous keys', async (t) => {
  const key = generateTestKey('EdDSA')
  const jwks = await startJwksServer([key])
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url })
  t.teardown(source.close)
  await source.refresh()

  const cases: Array<[string, { status: number, body: unknown }]> = [
    ['an empty set', { status: 200, body: { keys: [] } }],
    ['no keys array', { status: 200, body: { kid: 'x' } }],
    ['a JSON array', { status: 200, body: [key.jwk] }],
    ['not JSON', { status: 200, body: 'hello' }],
    ['a 500', { status: 500, body: { error: 'boom' } }],
    ['a 404', { status: 404, body: { error: 'nope' } }],
    ['a body over 64 KiB', { status: 200, body: { keys: [key.jwk], padding: 'x'.repeat(70_000) } }]
  ]
  for (const [name, response] of cases) {
    jwks.respondWith(response)
    await t.rejects(source.refresh(), name)
    t.ok(source.ready(), `${name}: still ready`)
    t.type(await source.getKey(key.kid), 'string', `${name}: the old key still verifies`)
  }
})

t.test('the body limit holds without a Content-Length header', async (t) => {
  const key = generateTestKey('EdDSA')
  const jwks = await startJwksServer([key], {
    routes: (app) => app.get('/chunked', async (_request, reply) => {
      const chunks = (function * () { for (let i = 0; i < 100; i++) yield Buffer.alloc(1024, 0x20) })()
      return reply.type('application/json').send(Readable.from(chunks))
    })
  })
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url.replace('/.well-known/jwks.json', '/chunked') })
  t.teardown(source.close)
  await t.rejects(source.refresh(), /larger than 65536 bytes/)
})

t.test('keeps at most maxKeys keys', async (t) => {
  const keys = [1, 2, 3, 4].map((n) => generateTestKey('EdDSA', `k${n}`))
  const jwks = await startJwksServer(keys)
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url, maxKeys: 2, minRefetchIntervalMs: 60_000 })
  t.teardown(source.close)
  await source.refresh()
  t.type(await source.getKey('k1'), 'string')
  t.type(await source.getKey('k2'), 'string')
  t.equal(await source.getKey('k3'), undefined)
})

t.test('a redirect is refused, not followed', async (t) => {
  const key = generateTestKey('EdDSA')
  const jwks = await startJwksServer([key], {
    routes: (app) => app.get('/moved', async (_request, reply) => reply.redirect('/.well-known/jwks.json'))
  })
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url.replace('/.well-known/jwks.json', '/moved') })
  t.teardown(source.close)
  await t.rejects(source.refresh())
  t.equal(jwks.hits(), 0)
})

t.test('an unresponsive server times out', async (t) => {
  const jwks = await startJwksServer([], { routes: (app) => app.get('/slow', async () => await new Promise(() => {})) })
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url.replace('/.well-known/jwks.json', '/slow'), timeoutMs: 200 })
  t.teardown(source.close)
  const started = Date.now()
  await t.rejects(source.refresh())
  t.ok(Date.now() - started < 2000, 'gave up after the timeout')
})

t.test('an unknown kid refetches at most once per interval', async (t) => {
  const first = generateTestKey('EdDSA')
  const jwks = await startJwksServer([first])
  t.teardown(jwks.close)
  const clock = testClock()
  const source = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 10_000, now: clock.now })
  t.teardown(source.close)
  await source.refresh()
  t.equal(jwks.hits(), 1)

  t.equal(await source.getKey('nobody'), undefined)
  t.equal(await source.getKey('nobody-else'), undefined)
  t.equal(jwks.hits(), 1, 'within the interval of the last fetch: no request')

  const second = generateTestKey('ES256')
  jwks.keys.push(second)
  t.equal(await source.getKey(second.kid), undefined, 'a new key is not seen before the interval ends')
  clock.advance(10_000)
  t.type(await source.getKey(second.kid), 'string', 'the first miss after the interval refetches and finds it')
  t.equal(jwks.hits(), 2)
  t.type(await source.getKey(second.kid), 'string')
  t.equal(await source.getKey('nobody'), undefined)
  t.equal(jwks.hits(), 2, 'known kids and rate-limited misses cost nothing')
})

t.test('concurrent misses share one fetch', async (t) => {
  const key = generateTestKey('EdDSA')
  const jwks = await startJwksServer([key])
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url })
  t.teardown(source.close)
  const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => await source.getKey(i % 2 === 0 ? key.kid : `unknown-${i}`)))
  t.equal(jwks.hits(), 1)
  t.equal(results.filter((result) => typeof result === 'string').length, 25)
})

t.test('keys withdrawn from the set stop being served after a refresh', async (t) => {
  const old = generateTestKey('EdDSA')
  const current = generateTestKey('EdDSA')
  const jwks = await startJwksServer([old, current])
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url })
  t.teardown(source.close)
  await source.refresh()
  jwks.keys = [current]
  await source.refresh()
  t.equal(await source.getKey(old.kid), undefined)
  t.type(await source.getKey(current.kid), 'string')
})

t.test('a server that is down: not ready, misses return undefined, later fetches succeed', async (t) => {
  const key = generateTestKey('EdDSA')
  const probe = await startJwksServer([key])
  const port = probe.port
  await probe.close()
  const clock = testClock()
  const source = createJwksKeySource({ jwksUrl: probe.url, now: clock.now })
  t.teardown(source.close)
  await t.rejects(source.refresh())
  t.equal(source.ready(), false)
  t.equal(await source.getKey(key.kid), undefined)

  const jwks = await startJwksServer([key], { port })
  t.teardown(jwks.close)
  clock.advance(10_000)
  t.type(await source.getKey(key.kid), 'string')
  t.equal(source.ready(), true)
})

t.test('close aborts a fetch under way and stops further fetches', async (t) => {
  let arrived: () => void = () => {}
  const underWay = new Promise<void>((resolve) => { arrived = resolve })
  const jwks = await startJwksServer([], { routes: (app) => app.get('/hang', async () => { arrived(); await new Promise(() => {}) }) })
  t.teardown(jwks.close)
  const source = createJwksKeySource({ jwksUrl: jwks.url.replace('/.well-known/jwks.json', '/hang'), timeoutMs: 60_000 })
  const pending = source.refresh()
  // Closed once the request has reached the server, not after a guess at how long that takes.
  await underWay
  source.close()
  await t.rejects(pending)
  await t.rejects(source.refresh(), /closed/)
  t.equal(await source.getKey('any'), undefined)
})
