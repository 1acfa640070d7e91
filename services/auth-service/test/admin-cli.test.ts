import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { isClusterClient, type RedisClient } from '@baton/service-kit'
import { decodeRevocationEvent, revocationStreamKey } from '@baton/tokens'
import { buildApp, loadConfig } from '../src/app.js'
import { defineScripts } from '../src/redis/scripts.js'
import { redisKeys } from '../src/redis/keys.js'
import { RedisUserStore, type UserStore } from '../src/core/accounts/user-store.js'
import { setup, sharedBackend, testClient, register, login, refresh, bearer, decodeJwt, keysWithTtl, type TestContext, type Tokens, ADMIN_CLI, runAdmin } from './helper.js'

// Each command is a process of its own; on a loaded machine they add up.
t.setTimeout(300_000)

const OPERATOR = 'alice@ops'

type Run = Awaited<ReturnType<typeof runAdmin>>

async function runCli (env: Record<string, string>, args: string[]): Promise<Run> {
  return await runAdmin({ BATON_OPERATOR: OPERATOR, ...env }, args)
}

/** The command's JSON result line. */
function result (run: Run): Record<string, unknown> {
  const lines = run.stdout.trim().split('\n')
  if (run.code !== 0 || lines.length !== 1) throw new Error(`expected exit 0 and one line on stdout, got ${String(run.code)}: ${run.stdout}\n${run.stderr}`)
  return JSON.parse(lines[0]!) as Record<string, unknown>
}

/** The audit lines the command wrote on stderr. */
function auditLines (run: Run): Array<Record<string, unknown>> {
  return run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
}

/** The env the CLI needs to reach the test's Redis under its prefix. */
async function cliEnv (context: TestContext, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const { env } = await sharedBackend()
  return { ...env, REDIS_KEY_PREFIX: context.prefix, LOG_LEVEL: 'info', ...extra }
}

/** Everything stored under the prefix, exactly (DUMP), and which keys expire. */
async function snapshot (redis: RedisClient, prefix: string): Promise<string> {
  const parts: string[] = []
  for (const [key, ttl] of [...(await keysWithTtl(redis, prefix))].sort(([a], [b]) => a < b ? -1 : 1)) {
    parts.push(`${key} ${ttl > 0 ? 'expires' : 'persists'} ${(await redis.dumpBuffer(key))?.toString('hex') ?? ''}`)
  }
  return parts.join('\n')
}

async function connectionsReceived (redis: RedisClient): Promise<number> {
  let total = 0
  for (const node of isClusterClient(redis) ? redis.nodes('master') : [redis]) {
    total += Number(/total_connections_received:(\d+)/.exec(await node.info('stats'))?.[1])
  }
  return total
}

async function feedEvents (redis: RedisClient, prefix: string): Promise<Array<ReturnType<typeof decodeRevocationEvent>>> {
  const entries = await redis.xrange(revocationStreamKey(prefix), '-', '+')
  return entries.map(([, fields]) => decodeRevocationEvent(fields))
}

async function jwksKids (app: FastifyInstance): Promise<string[]> {
  return (await app.inject('/.well-known/jwks.json')).json<{ keys: Array<{ kid: string }> }>().keys.map((key) => key.kid).sort()
}

async function waitFor (condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const PASSWORD = 'correct horse battery'
const passwordGrant = async (app: FastifyInstance, username: string, password = PASSWORD): Promise<{ statusCode: number, body: Record<string, unknown> }> => {
  const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username, password } })
  return { statusCode: response.statusCode, body: response.json<Record<string, unknown>>() }
}

function built (t: Test): boolean {
  if (existsSync(ADMIN_CLI)) return true
  t.fail(`${ADMIN_CLI} is missing: build first (pnpm build)`)
  return false
}

t.test('--help and usage errors connect to nothing and change nothing', async (t) => {
  if (!built(t)) return
  const context = await setup(t)
  const { app, redis, prefix } = context
  const ada = await register(app, 'ada', PASSWORD)
  await login(app, ada.username, PASSWORD)
  const env = await cliEnv(context)
  const kid = app.keyring.current().kid
  const before = await snapshot(redis, prefix)
  const connections = await connectionsReceived(redis)

  const helps = [
    ['--help'], ['-h'], [], ['keys', '--help'],
    ['keys', 'rotate', '--help'], ['keys', 'revoke', kid, '--help'], ['keys', 'list', '-h'],
    ['sessions', 'revoke', '--user', 'ada', '--help'], ['users', 'lock', 'ada', '--help'], ['users', 'unlock', 'ada', '-h']
  ]
  for (const [index, run] of (await Promise.all(helps.map(async (args) => await runCli(env, args)))).entries()) {
    const args = helps[index]!
    t.equal(run.code, 0, `${args.join(' ')}: exit 0`)
    t.match(run.stdout, /^Usage: baton-admin /, `${args.join(' ')}: prints the usage`)
    t.equal(run.stderr, '', `${args.join(' ')}: nothing on stderr`)
  }
  t.match((await runCli(env, ['--help'])).stdout, /keys revoke <kid>[\s\S]*sessions revoke --user <name>[\s\S]*users lock <name>/, 'the main help lists every command')
  t.match((await runCli(env, ['keys', 'revoke', kid, '--help'])).stdout, /--feed-only/, 'a command\'s help describes its options')

  const usageErrors = [
    ['keys', 'revoke'], ['frobnicate'], ['keys'], ['sessions', 'revoke'], ['users', 'lock', 'ada', '--user', 'bob'],
    ['keys', 'list', 'extra'], ['--bogus'], ['users', 'lock', 'ada', '--reason', 'x'.repeat(257)], ['keys', 'revoke', kid, '--reason']
  ]
  for (const [index, run] of (await Promise.all(usageErrors.map(async (args) => await runCli(env, args)))).entries()) {
    const args = usageErrors[index]!
    t.equal(run.code, 64, `${args.join(' ').slice(0, 40)}: exit 64`)
    t.match(run.stderr, /^baton-admin: .*; see baton-admin --help\n$/, `${args.join(' ').slice(0, 40)}: one line on stderr`)
    t.equal(run.stdout, '')
  }

  t.equal(await snapshot(redis, prefix), before, 'Redis holds exactly what it held before')
  t.equal(await connectionsReceived(redis), connections, 'no command above even connected to Redis')
  t.same(await jwksKids(app), [kid], 'the same single key is published')
})

t.test('keys list: kid, algorithm, state and times, never a private key', async (t) => {
  if (!built(t)) return
  const context = await setup(t)
  const env = await cliEnv(context)
  const kid = context.app.keyring.current().kid
  await runCli(env, ['keys', 'rotate'])
  const run = await runCli(env, ['keys', 'list'])
  t.equal(run.code, 0, run.stderr)
  const listed = result(run)
  t.match(listed, {
    source: 'redis',
    keys: [
      { kid, alg: 'EdDSA', state: 'active', created_at: /^\d{4}-\d\d-\d\dT.*Z$/, activate_at: /Z$/, deactivate_at: /Z$/, retire_at: /Z$/ },
      { kid: /^[A-Za-z0-9_-]{43}$/, alg: 'EdDSA', state: 'pending', created_at: /Z$/, activate_at: /Z$/ }
    ]
  })
  t.notMatch(run.stdout, /PRIVATE|pem/)

  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const supplied = result(await runCli({ ...env, SIGNING_KEY: pem }, ['keys', 'list']))
  t.match(supplied, { source: 'SIGNING_KEY', keys: [{ kid: /^[A-Za-z0-9_-]{43}$/, alg: 'EdDSA', state: 'active' }] })
  t.notMatch(JSON.stringify(supplied), /PRIVATE/)
})

t.test('users lock: logins refused, every session ended at once; unlock lets the user back; both audited', async (t) => {
  if (!built(t)) return
  const context = await setup(t)
  const { app, redis, prefix } = context
  const env = await cliEnv(context)
  const ada = await register(app, 'ada', PASSWORD)
  const bob = await register(app, 'bob', PASSWORD)
  const adaPhone = await login(app, 'ada', PASSWORD)
  const adaLaptop = await login(app, 'ada', PASSWORD)
  const bobTokens = await login(app, 'bob', PASSWORD)

  const locked = await runCli(env, ['users', 'lock', 'ada', '--reason', 'phished'])
  t.equal(locked.code, 0, locked.stderr)
  t.same(result(locked), { result: 'locked', user: ada.id, username: 'ada', sessions: 2 })
  const audit = auditLines(locked)
  t.match(audit.find((line) => line.event === 'user.locked'), { level: 40, service: 'baton-admin', version: String, user: ada.id, operator: OPERATOR, why: 'phished' })
  const sessionLines = audit.filter((line) => line.event === 'session.revoked')
  t.same(sessionLines.map((line) => line.sid).sort(), [adaPhone, adaLaptop].map((tokens) => decodeJwt(tokens.access_token).payload.sid).sort())
  t.ok(sessionLines.every((line) => line.reason === 'user_locked' && line.user === ada.id && line.operator === OPERATOR))

  const refused = await passwordGrant(app, 'ada')
  t.equal(refused.statusCode, 400)
  t.same(refused.body, { error: 'invalid_grant', error_description: 'the account is locked; ask an administrator' }, 'the right password: told the account is locked')
  const guessed = await passwordGrant(app, 'ada', 'wrong password guess')
  t.same(guessed.body, { error: 'invalid_grant', error_description: 'invalid username or password' }, 'a wrong password learns nothing of the lock')
  t.equal((await refresh(app, adaPhone.refresh_token)).statusCode, 400, 'a refresh token of the locked user is refused')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(adaLaptop.access_token) })).statusCode, 401, 'so is an access token at the auth-service')
  t.match(await feedEvents(redis, prefix), [{ kind: 'sessions', sub: ada.id, sids: Array }], 'verifiers following the feed are told')
  t.equal((await refresh(app, bobTokens.refresh_token)).statusCode, 200, 'another user is untouched')

  const again = await runCli(env, ['users', 'lock', 'ada'])
  t.same(result(again), { result: 'already-locked', user: ada.id, username: 'ada', sessions: 0 })
  t.notOk(auditLines(again).some((line) => line.event === 'user.locked'), 'nothing new to audit')

  const unlocked = await runCli(env, ['users', 'unlock', 'ada', '--reason', 'password reset'])
  t.same(result(unlocked), { result: 'unlocked', user: ada.id, username: 'ada' })
  t.match(auditLines(unlocked), [{ event: 'user.unlocked', level: 30, user: ada.id, operator: OPERATOR, why: 'password reset' }])
  t.equal((await passwordGrant(app, 'ada')).statusCode, 200, 'the user logs in again')
  t.same(result(await runCli(env, ['users', 'unlock', 'ada'])), { result: 'not-locked', user: ada.id, username: 'ada' })

  const unknown = await runCli(env, ['users', 'lock', 'nobody'])
  t.equal(unknown.code, 1)
  t.equal(unknown.stderr, 'baton-admin: no user named "nobody"\n')
  t.equal(await redis.exists(`${prefix}user:{nobody}`), 0)

  for (const run of [locked, again, unlocked]) {
    for (const secret of [PASSWORD, adaPhone.refresh_token, adaPhone.access_token, adaLaptop.refresh_token]) t.notOk(run.stderr.includes(secret) || run.stdout.includes(secret))
  }
  t.equal(bob.username, 'bob')
})

t.test('sessions revoke --user: every session of that user ends, no other', async (t) => {
  if (!built(t)) return
  const context = await setup(t)
  const { app, redis, prefix } = context
  const env = await cliEnv(context)
  const ada = await register(app, 'ada', PASSWORD)
  await register(app, 'bob', PASSWORD)
  const adaSessions = [await login(app, 'ada', PASSWORD), await login(app, 'ada', PASSWORD)]
  const bobTokens = await login(app, 'bob', PASSWORD)

  const run = await runCli(env, ['sessions', 'revoke', '--user', 'ADA', '--reason', 'laptop stolen'])
  t.equal(run.code, 0, run.stderr)
  t.same(result(run), { result: 'revoked', user: ada.id, username: 'ada', sessions: 2 }, 'the name is matched as at login, case-insensitively')
  t.equal(auditLines(run).filter((line) => line.event === 'session.revoked' && line.reason === 'operator' && line.why === 'laptop stolen').length, 2)
  for (const tokens of adaSessions) t.equal((await refresh(app, tokens.refresh_token)).statusCode, 400)
  t.equal((await refresh(app, bobTokens.refresh_token)).statusCode, 200)
  t.match(await feedEvents(redis, prefix), [{ kind: 'sessions', sub: ada.id }])
  t.equal((await passwordGrant(app, 'ada')).statusCode, 200, 'not a lock: the user may log in again')

  const none = await runCli(env, ['sessions', 'revoke', '--user', 'nobody'])
  t.equal(none.code, 1)
  t.equal(none.stderr, 'baton-admin: no user named "nobody"\n')
})

t.test('keys revoke: every instance drops the key at once, a new key signs, sessions carry on', async (t) => {
  if (!built(t)) return
  // Instances reread the keyring only every 300 s: what they learn within the test, they learn from the command.
  const ENV = { KEYRING_RELOAD_INTERVAL: '300', JWKS_MAX_AGE: '5', KEY_PUBLISH_AHEAD: '305', KEY_ROTATION_INTERVAL: '0', ACCESS_TOKEN_TTL: '60' }
  const context = await setup(t, ENV)
  const { app: first, redis, prefix } = context
  const { env: redisEnv } = await sharedBackend()
  const second = await buildApp(loadConfig({ ...redisEnv, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', ...ENV }))
  t.teardown(async () => { await second.close() })
  await second.ready()
  const env = await cliEnv(context, ENV)

  const leaked = first.keyring.current().kid
  t.equal(second.keyring.current().kid, leaked)
  await register(first, 'ada', PASSWORD)
  const session = await login(second, 'ada', PASSWORD)
  t.equal(decodeJwt(session.access_token).header.kid, leaked)

  const run = await runCli(env, ['keys', 'revoke', leaked, '--reason', 'found in a public paste'])
  t.equal(run.code, 0, run.stderr)
  const revoked = result(run)
  t.match(revoked, { result: 'replaced', kid: leaked, signer: /^[A-Za-z0-9_-]{43}$/, keys: [{ state: 'active' }] })
  const signer = revoked.signer as string
  t.not(signer, leaked)
  t.notOk((revoked.keys as Array<{ kid: string }>).some((key) => key.kid === leaked), 'the leaked key is out of the keyring')

  await waitFor(async () => (await jwksKids(first)).join() === signer && (await jwksKids(second)).join() === signer)
  t.pass('both instances publish only the new key, long before their next reload')
  const fresh = await login(second, 'ada', PASSWORD)
  t.equal(decodeJwt(fresh.access_token).header.kid, signer, 'a new login gets a token from the new key')
  const renewed = await refresh(first, session.refresh_token)
  t.equal(renewed.statusCode, 200, 'the session made before the revocation refreshes')
  t.equal(decodeJwt(renewed.json<Tokens>().access_token).header.kid, signer, 'into a token from the new key')
  t.equal((await first.inject({ url: '/sessions', headers: bearer(session.access_token) })).statusCode, 401, 'the auth-service refuses the leaked key\'s token itself')
  t.equal((await second.inject({ url: '/sessions', headers: bearer(fresh.access_token) })).statusCode, 200)

  t.match(await feedEvents(redis, prefix), [{ kind: 'key', kid: leaked, at: Number, until: Number }], 'a key event on the revocation feed')
  t.match(auditLines(run), [{ event: 'signing_key.revoked', level: 40, kid: leaked, replaced_by: signer, feed: 'published', operator: OPERATOR, why: 'found in a public paste' }])

  // A pending key: only removed; the signer stays.
  const pending = result(await runCli(env, ['keys', 'rotate'])).kid as string
  const removed = await runCli(env, ['keys', 'revoke', pending])
  t.match(result(removed), { result: 'removed', kid: pending, keys: [{ kid: signer, state: 'active' }] })
  t.notOk('signer' in result(removed))
  await waitFor(async () => !(await jwksKids(second)).includes(pending))
  t.equal(second.keyring.current().kid, signer)

  // base64url: a kid may start with '-', and is still a kid, not an option.
  const unknown = await runCli(env, ['keys', 'revoke', '-8no-such-kid', '--reason', 'typo'])
  t.equal(unknown.code, 1)
  t.equal(unknown.stderr, 'baton-admin: no signing key -8no-such-kid in the keyring (see `keys list`)\n')
  const stillHere = await runCli(env, ['keys', 'revoke', signer, '--feed-only'])
  t.equal(stillHere.code, 2, 'the feed alone is refused for a key still in the keyring')
  const eventsBefore = (await feedEvents(redis, prefix)).length
  const repeated = await runCli(env, ['keys', 'revoke', leaked, '--feed-only'])
  t.same(result(repeated), { result: 'feed-only', kid: leaked })
  t.equal((await feedEvents(redis, prefix)).length, eventsBefore + 1, 'published again')

  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const supplied = await runCli({ ...env, SIGNING_KEY: pem }, ['keys', 'revoke', signer])
  t.equal(supplied.code, 2)
  t.match(supplied.stderr, /^baton-admin: refused: the signing keys come from SIGNING_KEY \/ SIGNING_KEY_FILE, not Redis\. Replace the leaked key there/)
  const suppliedKid = (result(await runCli({ ...env, SIGNING_KEY: pem }, ['keys', 'list'])).keys as Array<{ kid: string }>)[0]!.kid
  t.equal((await runCli({ ...env, SIGNING_KEY: pem }, ['keys', 'revoke', suppliedKid, '--feed-only'])).code, 2, 'never the key that signs')
  t.same(await jwksKids(second), [signer], 'none of the refusals changed the keyring')
})

t.test('a lock that lands while a login is under way leaves that login no session', async (t) => {
  // The store answers as it found the user, then the lock lands: what `users lock` does while the login hashes the password.
  const backend = await sharedBackend()
  const prefix = `race${process.pid}:`
  const client = testClient(backend)
  t.teardown(() => { client.disconnect() })
  defineScripts(client)
  const store = new RedisUserStore(client, redisKeys(prefix), Date.now)
  let lockDuringLogin = false
  const users: UserStore = {
    create: async (user) => await store.create(user),
    findById: async (id) => await store.findById(id),
    replacePasswordHash: async (...args) => await store.replacePasswordHash(...args),
    findByUsername: async (username) => {
      const found = await store.findByUsername(username)
      if (found !== undefined && lockDuringLogin) await store.setLocked(found.id, true, Date.now())
      return found
    }
  }
  const app = await buildApp(loadConfig({ ...backend.env, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }), { users })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const ada = await register(app, 'ada', PASSWORD)

  lockDuringLogin = true
  const raced = await passwordGrant(app, 'ada')
  t.equal(raced.statusCode, 400)
  // The lock raised the credential version the login read: the session-creation script refuses it.
  t.same(raced.body, { error: 'invalid_grant', error_description: 'the password or the sessions changed while signing in; sign in again' })
  t.same(await client.zrange(redisKeys(prefix).sessionIndex(ada.id), 0, -1), [], 'no session was created')
  t.equal((await passwordGrant(app, 'ada')).body.error_description, 'the account is locked; ask an administrator', 'the next login finds the lock')
  t.equal((await store.findById(ada.id))?.lockedAt !== undefined, true)
})
