import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { Redis } from 'ioredis'
import { Keyring, type KeyringOptions } from '../src/core/keys/keyring.js'
import { sharedRedis, testClock, type TestClock } from './helper.js'

// The keyring is a plain class: these tests drive it with a Redis client and a clock, no Fastify app.
const silent = { info: () => {}, warn: () => {}, error: () => {} }
let prefixes = 0

async function keyringOn (t: Test, overrides: Partial<KeyringOptions> = {}): Promise<{ keyring: Keyring, clock: TestClock, options: KeyringOptions, redis: Redis }> {
  const server = await sharedRedis()
  const redis = new Redis(server.url)
  t.teardown(() => { redis.disconnect() })
  const prefix = `keyring-test-${process.pid}-${++prefixes}:`
  const clock = testClock()
  const options: KeyringOptions = {
    signingKeyPem: undefined,
    refreshTokenSecret: undefined,
    signingKeysKey: `${prefix}signing-keys`,
    refreshTokenSecretKey: `${prefix}refresh-token-secret`,
    now: clock.now,
    rotation: { publishAheadMs: 10_000, retireAfterMs: 70_000, rotationIntervalMs: 60_000, reloadIntervalMs: 5000, maxKeys: 8 },
    ...overrides
  }
  const keyring = new Keyring(redis, options, silent)
  t.teardown(() => { keyring.close() })
  return { keyring, clock, options, redis }
}

t.test('a generated keyring: nothing signs before the first load, then the schedule adds, activates and retires keys', async (t) => {
  const { keyring, clock } = await keyringOn(t)
  t.notOk(keyring.ready(), 'not ready before the first load')
  t.throws(() => keyring.current(), /not loaded yet/, 'no key signs yet')

  await keyring.sync()
  t.ok(keyring.ready(), 'ready once loaded')
  const first = keyring.current().kid
  t.same(keyring.states().map(({ kid, state }) => ({ kid, state })), [{ kid: first, state: 'active' }])

  clock.advance(60_000)
  await keyring.sync()
  const second = keyring.states().find((key) => key.state === 'pending')?.kid
  t.ok(second !== undefined && second !== first, 'the schedule added a pending key')
  t.equal(keyring.current().kid, first, 'which does not sign yet')
  t.same(keyring.all().map((key) => key.kid).sort(), [first, second].sort(), 'but is published')

  clock.advance(10_000)
  t.equal(keyring.current().kid, second, 'it signs once published long enough')
  t.equal(keyring.states().find((key) => key.kid === first)?.state, 'retiring')

  clock.advance(70_000)
  await keyring.sync()
  t.notOk(keyring.states().some((key) => key.kid === first), 'the retired key is deleted')
  t.notOk(keyring.all().some((key) => key.kid === first), 'and no longer published')
})

t.test('instances on one Redis share the keyring and the refresh-token secret', async (t) => {
  const { keyring, options, redis } = await keyringOn(t)
  await keyring.sync()
  const other = new Keyring(redis, options, silent)
  await other.sync()
  t.equal(other.current().kid, keyring.current().kid, 'the same signer')
  t.equal(other.refreshTokenSecret(), keyring.refreshTokenSecret(), 'the same refresh-token secret')
})

t.test('operator-supplied keys are fixed: they never rotate', async (t) => {
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const { keyring } = await keyringOn(t, { signingKeyPem: pem, refreshTokenSecret: 'a refresh-token secret of at least 32 bytes' })
  t.ok(keyring.ready(), 'ready without Redis')
  t.same(keyring.states().map(({ state }) => state), ['active'])
  await t.rejects(keyring.rotate(), /supplied by the operator/)
})
