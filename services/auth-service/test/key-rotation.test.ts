import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp, loadConfig } from '../src/app.js'
import { rotationPolicy } from '../src/config.js'
import { DEFAULT_ROTATION_POLICY, MAX_SIGNING_KEYS } from '../src/core/keys/rotation-policy.js'
import { signingKeyFromPem } from '../src/core/keys/signing-key.js'
import { setup, sharedBackend, testClient, register, login, refresh, bearer, decodeJwt, keysWithTtl, testClock, type TestClock, type Tokens, ADMIN_CLI, runAdmin } from './helper.js'

type Jwks = { keys: Array<Record<string, string>> }

// Short periods so the clock moves little: publish 10 s ahead, tokens live
// 60 s, so a key retires 60 + 5 (skew) + 5 (reload) = 70 s after it stops signing.
const ENV = {
  KEY_ROTATION_INTERVAL: '0',
  JWKS_MAX_AGE: '5',
  KEYRING_RELOAD_INTERVAL: '5',
  KEY_PUBLISH_AHEAD: '10',
  ACCESS_TOKEN_TTL: '60',
  CLOCK_SKEW: '5'
}
const RETIRE_AFTER_MS = 70_000

async function jwks (app: FastifyInstance): Promise<{ kids: string[], cacheControl: string | undefined, body: string }> {
  const response = await app.inject('/.well-known/jwks.json')
  return { kids: response.json<Jwks>().keys.map((key) => key.kid!).sort(), cacheControl: response.headers['cache-control'] as string | undefined, body: response.body }
}

const kidOf = (tokens: Tokens): string => decodeJwt(tokens.access_token).header.kid as string

/** A second auth-service on the same Redis and key prefix as `first`, sharing its clock. */
async function sibling (t: Test, prefix: string, clock: TestClock, env: Record<string, string>): Promise<FastifyInstance> {
  const { env: redisEnv } = await sharedBackend()
  const app = await buildApp(loadConfig({ ...redisEnv, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', ...env }), { now: clock.now })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

async function waitFor (condition: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

t.test('configuration: defaults, the publish-ahead floor, the JWKS max-age', async (t) => {
  const defaults = loadConfig({})
  t.match(defaults, { JWKS_MAX_AGE: 300, KEYRING_RELOAD_INTERVAL: 5, KEY_PUBLISH_AHEAD: 605, KEY_ROTATION_INTERVAL: 30 * 86_400 })
  // Worked out here from the documented defaults, not read back from the code under test.
  const expected = {
    publishAheadMs: 605_000, // 2 × JWKS_MAX_AGE (300 s) + KEYRING_RELOAD_INTERVAL (5 s)
    retireAfterMs: 910_000, // ACCESS_TOKEN_TTL (900 s) + CLOCK_SKEW (5 s) + KEYRING_RELOAD_INTERVAL (5 s)
    rotationIntervalMs: 2_592_000_000, // 30 days
    reloadIntervalMs: 5000,
    maxKeys: 8
  }
  t.same(rotationPolicy(defaults), expected, 'the policy the default configuration gives')
  t.same(DEFAULT_ROTATION_POLICY, expected, 'a keyring registered without a policy behaves like the default configuration')
  t.same(rotationPolicy(loadConfig({ ACCESS_TOKEN_TTL: '60', CLOCK_SKEW: '10', KEYRING_RELOAD_INTERVAL: '2', JWKS_MAX_AGE: '30', KEY_ROTATION_INTERVAL: '1h' })), {
    publishAheadMs: 62_000, retireAfterMs: 72_000, rotationIntervalMs: 3_600_000, reloadIntervalMs: 2000, maxKeys: 8
  }, 'each figure follows its settings')
  t.equal(loadConfig({ JWKS_MAX_AGE: '1m', KEYRING_RELOAD_INTERVAL: '2' }).KEY_PUBLISH_AHEAD, 122, 'the default follows JWKS_MAX_AGE')
  t.throws(() => loadConfig({ JWKS_MAX_AGE: '300', KEY_PUBLISH_AHEAD: '300' }), /^KEY_PUBLISH_AHEAD must be at least JWKS_MAX_AGE \+ KEYRING_RELOAD_INTERVAL \(305s\)/)
  t.throws(() => loadConfig({ KEYRING_RELOAD_INTERVAL: '0' }), /^KEYRING_RELOAD_INTERVAL /)
  t.throws(() => loadConfig({ KEY_ROTATION_INTERVAL: 'monthly' }), /^KEY_ROTATION_INTERVAL /)
  t.equal(loadConfig({ KEY_ROTATION_INTERVAL: '0' }).KEY_ROTATION_INTERVAL, 0, '0 turns the schedule off')

  const { app } = await setup(t, { ...ENV, JWKS_MAX_AGE: '7', KEY_PUBLISH_AHEAD: '12' })
  t.equal((await jwks(app)).cacheControl, 'public, max-age=7')
})

t.test('a new key is published before it signs, signs, and stays published until its tokens have expired', async (t) => {
  const { app, redis, prefix, clock } = await setup(t, ENV)
  const user = await register(app)
  const first = await login(app, user.username, user.password)
  const k1 = kidOf(first)
  t.same((await jwks(app)).kids, [k1])

  const rotated = await app.keyring.rotate()
  t.equal(rotated.status, 'added')
  const k2 = rotated.key!.kid
  const activateAt = rotated.key!.activate_at
  t.equal(activateAt, clock.now() + 10_000, 'it signs KEY_PUBLISH_AHEAD from now')
  t.same((await jwks(app)).kids, [k1, k2].sort(), 'pending: published at once')
  t.same(app.keyring.states().map(({ kid, state }) => ({ kid, state })), [{ kid: k1, state: 'active' }, { kid: k2, state: 'pending' }])
  t.equal(kidOf(await login(app, user.username, user.password)), k1, 'pending: not signing')
  t.equal((await app.keyring.rotate()).status, 'pending', 'one pending key at a time')

  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /baton_auth_signing_keys\{state="pending"\} 1/)
  t.match(metrics, /baton_auth_signing_keys\{state="active"\} 1/)

  clock.advance(activateAt - clock.now() - 1)
  const lastOfK1 = await login(app, user.username, user.password)
  t.equal(kidOf(lastOfK1), k1, 'still the old key a millisecond before')
  clock.advance(1)
  const firstOfK2 = await login(app, user.username, user.password)
  t.equal(kidOf(firstOfK2), k2, 'the new key signs from activate_at')
  t.equal(kidOf(JSON.parse((await refresh(app, firstOfK2.refresh_token)).body) as Tokens), k2, 'refreshed tokens too')
  t.same((await jwks(app)).kids, [k1, k2].sort(), 'the old key stays published')
  t.same(app.keyring.states().map(({ kid, state }) => ({ kid, state })), [{ kid: k1, state: 'retiring' }, { kid: k2, state: 'active' }])
  t.equal((await app.inject({ url: '/sessions', headers: bearer(lastOfK1.access_token) })).statusCode, 200, 'tokens of the retiring key still verify')

  const retireAt = activateAt + RETIRE_AFTER_MS
  const lastExp = decodeJwt(lastOfK1.access_token).payload.exp as number
  t.ok((lastExp + 5) * 1000 < retireAt, 'every token the old key signed has expired, with the clock-skew leeway, before it retires')
  clock.advance(retireAt - clock.now() - 1)
  t.same((await jwks(app)).kids, [k1, k2].sort(), 'published until the last moment')
  clock.advance(1)
  t.same((await jwks(app)).kids, [k2], 'retired: gone from the JWKS')
  t.equal(app.keyring.states().find((key) => key.kid === k1)?.state, 'retired')

  await app.keyring.sync()
  const stored = JSON.parse((await redis.get(`${prefix}signing-keys`))!) as Array<Record<string, unknown>>
  t.same(stored.map((key) => key.kid), [k2], 'and deleted from Redis')
  t.same(app.keyring.states().map(({ kid, state }) => ({ kid, state })), [{ kid: k2, state: 'active' }])
})

t.test('two instances on one Redis agree on the signer and the key set at every moment', async (t) => {
  const env = { ...ENV, KEYRING_RELOAD_INTERVAL: '1', KEY_PUBLISH_AHEAD: '10' }
  const retireAfter = 60_000 + 5000 + 1000
  const clock = testClock()
  const { app: a, prefix } = await setup(t, env, { clock })
  const b = await sibling(t, prefix, clock, env)
  const k1 = a.keyring.current().kid
  t.equal(b.keyring.current().kid, k1, 'both started on the same key')

  const rotated = await a.keyring.rotate()
  const k2 = rotated.key!.kid
  // B learns of the key only by its own periodic reload.
  await waitFor(async () => (await jwks(b)).kids.includes(k2))
  t.pass('the other instance published the pending key within KEYRING_RELOAD_INTERVAL')

  const signers: string[] = []
  const end = rotated.key!.activate_at + retireAfter + 2000
  let disagreements = 0
  let unpublishedSigner = 0
  while (clock.now() < end) {
    const [kidA, kidB] = [a.keyring.current().kid, b.keyring.current().kid]
    const [setA, setB] = [(await jwks(a)).kids, (await jwks(b)).kids]
    if (kidA !== kidB || setA.join() !== setB.join()) disagreements++
    if (signers.at(-1) !== kidA) signers.push(kidA)
    if (!setA.includes(kidA)) unpublishedSigner++
    clock.advance(500)
  }
  t.equal(disagreements, 0, 'never a different signer or key set')
  t.equal(unpublishedSigner, 0, 'the signer is always published')
  t.same(signers, [k1, k2], 'the signer changed once, and never back')
  t.same((await jwks(a)).kids, [k2])
})

t.test('the schedule adds a key when due, once across instances', async (t) => {
  const env = { ...ENV, KEY_ROTATION_INTERVAL: '100', KEYRING_RELOAD_INTERVAL: '1' }
  const clock = testClock()
  const { app: a, redis, prefix } = await setup(t, env, { clock })
  const b = await sibling(t, prefix, clock, env)
  const stored = async (): Promise<Array<{ kid: string, activate_at: number }>> => JSON.parse((await redis.get(`${prefix}signing-keys`))!) as Array<{ kid: string, activate_at: number }>
  const [k1] = await stored()
  const startedAt = k1!.activate_at

  clock.advance(startedAt + 100_000 - 1 - clock.now())
  await Promise.all([a.keyring.sync(), b.keyring.sync(), a.keyring.sync()])
  t.equal((await stored()).length, 1, 'not due a millisecond early')

  clock.advance(1)
  await Promise.all([a.keyring.sync(), b.keyring.sync()])
  const afterFirst = await stored()
  t.equal(afterFirst.length, 2, 'due: exactly one key added by two instances syncing at once')
  const k2 = afterFirst[1]!
  t.equal(k2.activate_at, clock.now() + 10_000, 'pending for KEY_PUBLISH_AHEAD')
  await Promise.all([a.keyring.sync(), b.keyring.sync()])
  t.same([(await jwks(a)).kids, (await jwks(b)).kids], [[k1!.kid, k2.kid].sort(), [k1!.kid, k2.kid].sort()])

  clock.advance(10_000)
  t.same([a.keyring.current().kid, b.keyring.current().kid], [k2.kid, k2.kid])

  clock.advance(100_000)
  await Promise.all([b.keyring.sync(), a.keyring.sync()])
  const afterSecond = await stored()
  t.same(afterSecond.map((key) => key.kid).slice(0, 1), [k2.kid], 'the first key retired and was deleted along the way')
  t.equal(afterSecond.length, 2, 'the next key is pending')
  t.equal(afterSecond[1]!.activate_at, k2.activate_at + 100_000 + 10_000, 'due KEY_ROTATION_INTERVAL after the current key began to sign')
})

const runCli = async (env: Record<string, string>): Promise<Awaited<ReturnType<typeof runAdmin>>> => await runAdmin(env, ['keys', 'rotate'])

t.test('baton-admin keys rotate, the operator command, adds a pending key', async (t) => {
  if (!existsSync(ADMIN_CLI)) {
    t.fail(`${ADMIN_CLI} is missing: build first (pnpm build)`)
    return
  }
  const { env: redisEnv } = await sharedBackend()
  // The commands run on the real clock, each in a process of its own: published
  // long enough ahead that the key is still pending for the second command on a busy machine.
  const publishAhead = { ...ENV, KEY_PUBLISH_AHEAD: '600' }
  const { app, redis, prefix } = await setup(t, publishAhead)
  const env = { ...redisEnv, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', ...publishAhead }
  const k1 = app.keyring.current().kid
  const before = Date.now()

  const added = await runCli(env)
  t.equal(added.code, 0, added.stderr)
  t.equal(added.stdout.trim().split('\n').length, 1, 'one line')
  const line = JSON.parse(added.stdout) as { result: string, kid: string, activate_at: string, keys: Array<Record<string, string>> }
  t.match(line, { result: 'added', kid: /^[A-Za-z0-9_-]{43}$/, activate_at: /^\d{4}-\d\d-\d\dT/ })
  const activateAt = Date.parse(line.activate_at)
  t.ok(activateAt >= before + 600_000 && activateAt <= Date.now() + 600_000, 'it signs KEY_PUBLISH_AHEAD after the command')
  t.same(line.keys.map(({ kid, state }) => ({ kid, state })), [{ kid: k1, state: 'active' }, { kid: line.kid, state: 'pending' }])
  t.notOk(added.stdout.includes('PRIVATE'), 'no private key printed')

  await app.keyring.sync()
  t.same((await jwks(app)).kids, [k1, line.kid].sort(), 'the service publishes it after its next reload')
  t.equal(app.keyring.current().kid, k1, 'and does not sign with it yet')

  const again = await runCli(env)
  t.equal(again.code, 0)
  t.match(JSON.parse(again.stdout), { result: 'pending', kid: line.kid }, 'a second command while one is pending changes nothing')
  const storedBefore = await redis.get(`${prefix}signing-keys`)
  t.equal((JSON.parse(storedBefore!) as unknown[]).length, 2)

  // Independent of each other: run together.
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const [fresh, refused, badConfig, noRedis] = await Promise.all([
    runCli({ ...env, REDIS_KEY_PREFIX: `${prefix}fresh:` }),
    runCli({ ...env, SIGNING_KEY: pem }),
    runCli({ ...env, KEY_PUBLISH_AHEAD: '1' }),
    runCli({ ...env, REDIS_CLUSTER_NODES: '', REDIS_URL: 'redis://127.0.0.1:1' })
  ])
  t.equal(fresh.code, 0)
  t.match(JSON.parse(fresh.stdout), { result: 'created', keys: [{ state: 'active' }] }, 'no keyring yet: the first key signs at once')

  t.equal(refused.code, 2, 'refused with operator-supplied keys')
  t.match(refused.stderr, /^baton-admin: refused: the signing keys come from SIGNING_KEY \/ SIGNING_KEY_FILE/)
  t.equal(refused.stdout, '')
  t.equal(await redis.get(`${prefix}signing-keys`), storedBefore, 'and nothing changed')

  t.equal(badConfig.code, 1)
  t.match(badConfig.stderr, /^baton-admin: invalid configuration: KEY_PUBLISH_AHEAD /)

  t.equal(noRedis.code, 1)
  t.match(noRedis.stderr, /^baton-admin: keys rotate failed against Redis at 127\.0\.0\.1:1/)
})

t.test('operator-supplied keys: the first signs, the others are published', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-rotation-'))
  const pair = (type: 'ed25519' | 'ec'): { priv: string, pub: string } => {
    const keys = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
    return { priv: keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), pub: keys.publicKey.export({ format: 'pem', type: 'spki' }).toString() }
  }
  const old = pair('ed25519')
  const next = pair('ec')
  const file = join(dir, 'signing.pem')

  // The documented procedure, one deployment per step.
  const steps = [
    { name: '1. the new key added second: published only', pem: old.priv + next.priv, signs: 'EdDSA', published: 2 },
    { name: '2. the new key moved first: it signs, the old one (public part only) stays published', pem: next.priv + old.pub, signs: 'ES256', published: 2 },
    { name: '3. the old key removed', pem: next.priv, signs: 'ES256', published: 1 }
  ]
  const kidsBySigner = new Map<string, string>()
  for (const step of steps) {
    writeFileSync(file, step.pem)
    const { app } = await setup(t, { ...ENV, SIGNING_KEY_FILE: file })
    const user = await register(app)
    const { header } = decodeJwt((await login(app, user.username, user.password)).access_token)
    t.equal(header.alg, step.signs, step.name)
    kidsBySigner.set(step.signs, header.kid as string)
    const published = await jwks(app)
    t.equal(published.kids.length, step.published, step.name)
    t.ok(published.kids.includes(header.kid as string), `${step.name}: the signer is published`)
    t.notOk(published.body.includes('"d"'), 'no private part')
    if (step.published === 2) t.match((await app.inject('/metrics')).body, /baton_auth_signing_keys\{state="published"\} 1/)
    await t.rejects(app.keyring.rotate(), /supplied by the operator/)
    await app.close()
  }
  t.equal(kidsBySigner.size, 2)

  writeFileSync(file, old.pub + old.priv)
  t.throws(() => loadConfig({ SIGNING_KEY_FILE: file }), /^SIGNING_KEY_FILE must start with the private key that signs/)
  writeFileSync(file, old.priv + old.pub)
  t.throws(() => loadConfig({ SIGNING_KEY_FILE: file }), /^SIGNING_KEY_FILE key 2 repeats an earlier key/)
  t.throws(() => loadConfig({ SIGNING_KEY: 'garbage' }), /^SIGNING_KEY must hold an Ed25519 or P-256 private key/)
})

t.test('a keyring written before rotation existed keeps signing and rotates', async (t) => {
  const backend = await sharedBackend()
  const prefix = `legacy-${process.pid}:`
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const kid = signingKeyFromPem(pem).kid
  const redis = testClient(backend)
  t.teardown(() => { redis.disconnect() })
  await redis.set(`${prefix}signing-keys`, JSON.stringify([{ kid, alg: 'EdDSA', pem, created_at: Date.now() - 86_400_000 }]))

  const clock = testClock()
  const app = await sibling(t, prefix, clock, ENV)
  t.equal(app.keyring.current().kid, kid)
  const rotated = await app.keyring.rotate()
  t.equal(rotated.status, 'added')
  const stored = JSON.parse((await redis.get(`${prefix}signing-keys`))!) as Array<Record<string, unknown>>
  t.match(stored, [{ kid, pem, activate_at: Number }, { kid: rotated.key!.kid, activate_at: rotated.key!.activate_at }])
  t.same(Object.keys(stored[1]!).sort(), ['activate_at', 'alg', 'created_at', 'kid', 'pem'])
})

t.test('a keyring lost from Redis is put back from memory', async (t) => {
  const { app, redis, prefix } = await setup(t, ENV)
  await app.keyring.rotate()
  const before = await redis.get(`${prefix}signing-keys`)
  const published = (await jwks(app)).kids
  await redis.del(`${prefix}signing-keys`)
  await app.keyring.sync()
  t.equal(await redis.get(`${prefix}signing-keys`), before, 'restored as it was')
  t.same((await jwks(app)).kids, published, 'nothing changed for verifiers')
})

t.test('the keyring stays bounded and holds only what it must', async (t) => {
  const { app, redis, prefix, clock } = await setup(t, { ...ENV, ACCESS_TOKEN_TTL: '1d' })
  const statuses: string[] = []
  for (let i = 0; i < MAX_SIGNING_KEYS + 2; i++) {
    statuses.push((await app.keyring.rotate()).status)
    clock.advance(10_000)
  }
  t.same(statuses, [...Array<string>(MAX_SIGNING_KEYS - 1).fill('added'), 'full', 'full', 'full'])
  const stored = JSON.parse((await redis.get(`${prefix}signing-keys`))!) as Array<Record<string, unknown>>
  t.equal(stored.length, MAX_SIGNING_KEYS)
  t.equal((await jwks(app)).kids.length, MAX_SIGNING_KEYS, 'all still published: their tokens live a day')

  clock.advance(86_400_000 + 10_000 + 1000)
  t.equal((await app.keyring.rotate()).status, 'added', 'once keys retire, there is room again')
  t.equal((JSON.parse((await redis.get(`${prefix}signing-keys`))!) as unknown[]).length, 2, 'retired keys were deleted: the active and the new one remain')

  const ttls = await keysWithTtl(redis, prefix)
  for (const [key, ttl] of ttls) {
    if (ttl === -1) t.match(key, /(signing-keys|refresh-token-secret)$/, `${key}: only the two bounded singletons have no TTL`)
  }
})
