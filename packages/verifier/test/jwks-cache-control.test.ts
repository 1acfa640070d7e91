import t, { type Test } from 'tap'
import { createJwksKeySource } from '../src/index.js'
import { generateTestKey, startJwksServer, testClock, type JwksServer } from './helper.js'

// An issuer that rotates keys publishes a new one at least max-age before it
// signs with it. A verifier honours that by refetching for an unknown kid once
// its key set is past max-age, even inside its own minimum refetch interval.

async function serverWithCacheControl (t: Test, cacheControl: () => string | undefined): Promise<JwksServer> {
  const jwks = await startJwksServer([generateTestKey('EdDSA')], {
    routes: (app) => {
      app.addHook('onSend', async (_request, reply) => {
        const value = cacheControl()
        if (value !== undefined) reply.header('cache-control', value)
      })
    }
  })
  t.teardown(jwks.close)
  return jwks
}

t.test('a key set past its max-age is refetched for an unknown kid', async (t) => {
  const jwks = await serverWithCacheControl(t, () => 'public, max-age=5')
  const clock = testClock()
  const source = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 3_600_000, now: clock.now })
  t.teardown(source.close)
  await source.refresh()

  const next = generateTestKey('EdDSA')
  jwks.keys.push(next)
  clock.advance(4999)
  t.equal(await source.getKey(next.kid), undefined, 'fresh for max-age: the minimum interval holds')
  t.equal(jwks.hits(), 1)
  clock.advance(1)
  t.type(await source.getKey(next.kid), 'string', 'stale: the first miss refetches and finds the new key')
  t.equal(jwks.hits(), 2)
  t.equal(await source.getKey('made-up'), undefined)
  t.equal(jwks.hits(), 2, 'the new key set is fresh again: made-up kids cost nothing')
})

t.test('no-cache or max-age=0 still allows at most one fetch a second', async (t) => {
  const jwks = await serverWithCacheControl(t, () => 'no-cache')
  const clock = testClock()
  const source = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 60_000, now: clock.now })
  t.teardown(source.close)
  await source.refresh()
  for (let i = 0; i < 10; i++) t.equal(await source.getKey(`made-up-${i}`), undefined)
  t.equal(jwks.hits(), 1)
  clock.advance(1000)
  t.equal(await source.getKey('made-up'), undefined)
  t.equal(jwks.hits(), 2)
})

t.test('without Cache-Control only the minimum interval applies, as before', async (t) => {
  const jwks = await serverWithCacheControl(t, () => undefined)
  const clock = testClock()
  const source = createJwksKeySource({ jwksUrl: jwks.url, minRefetchIntervalMs: 10_000, now: clock.now })
  t.teardown(source.close)
  await source.refresh()
  const next = generateTestKey('ES256')
  jwks.keys.push(next)
  clock.advance(9999)
  t.equal(await source.getKey(next.kid), undefined)
  clock.advance(1)
  t.type(await source.getKey(next.kid), 'string')
  t.equal(jwks.hits(), 2)
})
