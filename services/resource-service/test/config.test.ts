import t from 'tap'
import { ConfigError } from '@baton/service-kit'
import { loadConfig } from '../src/config.js'

t.test('defaults follow the contract', async (t) => {
  const config = loadConfig({})
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.PORT, 3002)
  t.equal(config.ISSUER, 'http://127.0.0.1:3001')
  t.equal(config.AUDIENCE, 'baton-api')
  t.equal(config.CLOCK_SKEW, 5)
  t.equal(config.BODY_LIMIT, 16_384)
  t.equal(config.JWKS_URL, 'http://127.0.0.1:3001/.well-known/jwks.json')
  t.equal(config.JWKS_MIN_REFETCH_INTERVAL, 10)
  t.equal(config.REDIS_URL, undefined, 'no Redis unless told: the revocation feed is opt-in')
  t.ok(Object.isFrozen(config))
})

t.test('JWKS_URL defaults to the issuer\'s well-known address', async (t) => {
  t.equal(loadConfig({ ISSUER: 'https://auth.example.com/' }).JWKS_URL, 'https://auth.example.com/.well-known/jwks.json')
  t.equal(loadConfig({ JWKS_URL: 'http://keys.internal:8080/jwks' }).JWKS_URL, 'http://keys.internal:8080/jwks')
})

t.test('durations take seconds or a unit', async (t) => {
  t.equal(loadConfig({ JWKS_MIN_REFETCH_INTERVAL: '30' }).JWKS_MIN_REFETCH_INTERVAL, 30)
  t.equal(loadConfig({ JWKS_MIN_REFETCH_INTERVAL: '2m' }).JWKS_MIN_REFETCH_INTERVAL, 120)
  t.equal(loadConfig({ CLOCK_SKEW: '0' }).CLOCK_SKEW, 0)
})

t.test('a bad value names its variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ JWKS_URL: 'ftp://keys' }, 'JWKS_URL'],
    [{ JWKS_URL: 'not a url' }, 'JWKS_URL'],
    [{ JWKS_MIN_REFETCH_INTERVAL: '0' }, 'JWKS_MIN_REFETCH_INTERVAL'],
    [{ JWKS_MIN_REFETCH_INTERVAL: 'soon' }, 'JWKS_MIN_REFETCH_INTERVAL'],
    [{ PORT: '70000' }, 'PORT'],
    [{ ISSUER: 'auth-service' }, 'ISSUER'],
    [{ CLOCK_SKEW: '1h' }, 'CLOCK_SKEW'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL'],
    [{ REDIS_URL: 'redis' }, 'REDIS_URL']
  ]
  for (const [env, variable] of cases) {
    const error = (() => { try { loadConfig(env) } catch (thrown) { return thrown } })()
    t.ok(error instanceof ConfigError && error.variable === variable && error.message.startsWith(`${variable} `), variable)
  }
})

t.test('REDIS_URL turns the revocation feed on', async (t) => {
  t.equal(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6380' }).REDIS_URL, 'redis://127.0.0.1:6380')
  t.equal(loadConfig({ REDIS_URL: 'rediss://feed.internal:6380' }).REDIS_URL, 'rediss://feed.internal:6380')
})
