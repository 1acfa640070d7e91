import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildApp, loadConfig } from '../src/app.js'
import {
  AUDIENCE, ISSUER, claims, generateTestKey, setup, signToken, startJwksServer, waitFor
} from './helper.js'

t.test('an unknown kid refetches the key set once, then is still refused', async (t) => {
  const { app, jwks, clock } = await setup(t)
  t.equal(jwks.hits(), 1, 'fetched once at start')
  const stranger = generateTestKey('EdDSA', 'kid-nobody-published')
  const token = signToken(stranger, claims({}, clock.now()))

  clock.advance(10_000)
  const first = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(first.statusCode, 401)
  t.same(first.json(), { error: 'invalid_token', error_description: 'the access token was signed with an unknown key' })
  t.equal(jwks.hits(), 2, 'the miss refetched the key set')

  const again = await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(again.statusCode, 401)
  t.equal(jwks.hits(), 2, 'and the next miss, within the interval, did not')
})

t.test('a key published after start is picked up on first use of its kid; refetches are rate-limited', async (t) => {
  const { app, jwks, clock } = await setup(t, { JWKS_MIN_REFETCH_INTERVAL: '30s' })
  const added = generateTestKey('ES256')
  jwks.keys.push(added)

  const early = signToken(added, claims({}, clock.now()))
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${early}` } })).statusCode, 401, 'within 30 s of the start-up fetch: not fetched again')
  t.equal(jwks.hits(), 1)

  clock.advance(30_000)
  const token = signToken(added, claims({}, clock.now()))
  const responses = await Promise.all(Array.from({ length: 20 }, async () => await app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })))
  t.same(responses.map((response) => response.statusCode), Array(20).fill(200), 'every concurrent request verified with the new key')
  t.equal(jwks.hits(), 2, 'twenty concurrent misses shared one fetch')

  // A flood of made-up kids right after a fetch costs the issuer nothing.
  for (let i = 0; i < 50; i++) {
    const forged = signToken(generateTestKey('EdDSA', `forged-${i}`), claims({}, clock.now()))
    t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${forged}` } })).statusCode, 401)
  }
  t.equal(jwks.hits(), 2)
  clock.advance(30_000)
  const forged = signToken(generateTestKey('EdDSA', 'forged-late'), claims({}, clock.now()))
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${forged}` } })).statusCode, 401)
  t.equal(jwks.hits(), 3, 'one more fetch once the interval has passed')
})

t.test('the key set down at start: the service starts, is unready, and recovers by itself', async (t) => {
  const key = generateTestKey('EdDSA')
  // A port that nothing listens on (until we reopen it below).
  const probe = await startJwksServer([key])
  await probe.close()

  const config = loadConfig({ ISSUER, AUDIENCE, JWKS_URL: probe.url, LOG_LEVEL: 'silent' })
  const app = await buildApp(config)
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const unready = await fetch(`${base}/readyz`)
  t.equal(unready.status, 503)
  t.same(await unready.json(), { status: 'unavailable', checks: { keys: 'verification keys are not loaded yet' } })
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'alive all the same')

  const token = signToken(key, claims())
  const refused = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(refused.status, 401, 'a token it cannot check yet is refused, not a 5xx')

  const jwks = await startJwksServer([key], { port: probe.port })
  t.teardown(jwks.close)
  await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 10_000)
  t.ok(jwks.hits() >= 1)

  const me = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(me.status, 200)
  t.equal((await me.json() as { sub: string }).sub, 'user-1')
})

t.test('a key-set endpoint answering errors at start: retried until it serves keys', async (t) => {
  const key = generateTestKey('ES256')
  const jwks = await startJwksServer([key])
  t.teardown(jwks.close)
  jwks.respondWith({ status: 503, body: { error: 'starting' } })

  const app = await buildApp(loadConfig({ ISSUER, AUDIENCE, JWKS_URL: jwks.url, LOG_LEVEL: 'silent' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  t.equal((await app.inject('/readyz')).statusCode, 503)

  jwks.respondWith(undefined)
  await waitFor(async () => (await app.inject('/readyz')).statusCode === 200, 10_000)
  t.ok(jwks.hits() >= 2, 'retried')
  t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${signToken(key, claims())}` } })).statusCode, 200)
  // That retries then stop, and stop when the app closes: jwks-loader.test.ts, against events rather than sleeps.
})
