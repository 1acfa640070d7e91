import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { setup, register, login, refresh, bearer, keysWithTtl } from './helper.js'
import { ipBucket } from '../src/rate-limits.js'

const WRONG = 'not the password at all'

async function attempt (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/oauth/token', remoteAddress, headers, payload: { grant_type: 'password', username, password } })
}

/** Counts real password hashes and verifications, passing every call on to the real hasher. */
function countHashing (app: FastifyInstance): () => number {
  let calls = 0
  const hasher = app.passwords as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  for (const name of ['hash', 'verify', 'verifyDummy']) {
    const real = hasher[name]!
    hasher[name] = async (...args) => { calls += 1; return await real(...args) }
  }
  return () => calls
}

function auditEvents (logs: string, event: string): Array<Record<string, unknown>> {
  return logs.split('\n').filter((line) => line.includes(`"event":"${event}"`)).map((line) => JSON.parse(line) as Record<string, unknown>)
}

t.test('an account is locked after RATE_LIMIT_ACCOUNT_FAILURES failures: the right password then gets the same 429 as a wrong one', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '5' })
  const user = await register(app, 'victim')
  const hashes = countHashing(app)
  for (let i = 0; i < 5; i++) {
    const response = await attempt(app, 'victim', WRONG)
    t.equal(response.statusCode, 400, `failure ${i + 1} is an ordinary invalid_grant`)
  }
  const wrong = await attempt(app, 'victim', WRONG)
  const right = await attempt(app, 'victim', user.password)
  const caseFolded = await attempt(app, 'VICTIM', user.password)
  for (const response of [wrong, right, caseFolded]) {
    t.equal(response.statusCode, 429)
    t.same(response.json(), { error: 'slow_down', error_description: 'too many attempts; try again later' })
    const retryAfter = Number(response.headers['retry-after'])
    t.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}s is the rest of the 15-minute window`)
    t.equal(response.headers['cache-control'], 'no-store')
  }
  t.equal(right.body, wrong.body, 'the right password cannot be told from a wrong one')
  t.equal(hashes(), 5, 'locked attempts never reach the password hasher')

  const locked = auditEvents(logs(), 'login.locked')
  t.equal(locked.length, 3)
  t.match(locked[0], { level: 40, reason: 'account_failures', client_id: 'baton', ip: '127.0.0.1' })
  t.equal(auditEvents(logs(), 'login.failed').length, 5)

  // Only that account: the same IP still logs others in.
  await register(app, 'bystander')
  t.equal((await attempt(app, 'bystander', user.password)).statusCode, 200)
})

t.test('unknown usernames are counted and locked exactly like real ones', async (t) => {
  const { app } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '3' })
  await register(app, 'realuser')
  const statuses = async (name: string): Promise<number[]> => {
    const result: number[] = []
    for (let i = 0; i < 5; i++) result.push((await attempt(app, name, WRONG)).statusCode)
    return result
  }
  const real = await statuses('realuser')
  const ghost = await statuses('ghostuser')
  t.same(real, [400, 400, 400, 429, 429])
  t.same(ghost, real, 'nothing tells whether the account exists')
})

t.test('locks expire by themselves', async (t) => {
  const { app, redis, prefix } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '2', RATE_LIMIT_FAILURE_WINDOW: '1' })
  const user = await register(app, 'sleeper')
  await attempt(app, 'sleeper', WRONG)
  await attempt(app, 'sleeper', WRONG)
  const locked = await attempt(app, 'sleeper', user.password)
  t.equal(locked.statusCode, 429)
  t.equal(locked.headers['retry-after'], '1')
  for (const [key, ttl] of await keysWithTtl(redis, `${prefix}rate:`)) {
    t.ok(ttl > 0 && ttl <= 60_000, `${key} has a TTL (${ttl} ms)`)
  }
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await attempt(app, 'sleeper', user.password)).statusCode, 200, 'after Retry-After the right password works again')
})

t.test('a successful login forgives the account its earlier failures', async (t) => {
  const { app } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '3' })
  const user = await register(app, 'forgetful')
  await attempt(app, 'forgetful', WRONG)
  await attempt(app, 'forgetful', WRONG)
  t.equal((await attempt(app, 'forgetful', user.password)).statusCode, 200)
  t.same([(await attempt(app, 'forgetful', WRONG)).statusCode, (await attempt(app, 'forgetful', WRONG)).statusCode], [400, 400],
    'the count starts again')
})

t.test('a burst of parallel guesses gets no more checks than the limit', async (t) => {
  const { app } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '10' })
  await register(app, 'burst')
  const hashes = countHashing(app)
  const responses = await Promise.all(Array.from({ length: 60 }, async () => await attempt(app, 'burst', WRONG)))
  const counts = new Map<number, number>()
  for (const response of responses) counts.set(response.statusCode, (counts.get(response.statusCode) ?? 0) + 1)
  t.same(Object.fromEntries(counts), { 400: 10, 429: 50 })
  t.equal(hashes(), 10, 'exactly ten passwords were checked')
})

t.test('an IP that fails against many accounts is locked out, for every account, and only that IP', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_IP_FAILURES: '4' })
  const user = await register(app, 'stuffed')
  for (let i = 0; i < 4; i++) t.equal((await attempt(app, `someone${i}`, WRONG, '203.0.113.7')).statusCode, 400)
  const refused = await attempt(app, 'stuffed', user.password, '203.0.113.7')
  t.equal(refused.statusCode, 429, 'even valid credentials from that IP')
  t.match(auditEvents(logs(), 'login.locked').at(-1), { reason: 'ip_failures', ip: '203.0.113.7' })
  t.equal((await attempt(app, 'stuffed', user.password, '203.0.113.8')).statusCode, 200, 'another IP is not affected')
  // Registration from the locked IP is refused too: the same attacker cannot move on to probing names.
  const registration = await app.inject({ method: 'POST', url: '/users', remoteAddress: '203.0.113.7', payload: { username: 'newcomer', password: 'correct horse battery' } })
  t.equal(registration.statusCode, 429)
})

t.test('successful logins give their failure reservation back: a busy NAT is not locked out by its own users', async (t) => {
  const { app } = await setup(t, { RATE_LIMIT_IP_FAILURES: '3' })
  const user = await register(app, 'office')
  for (let i = 0; i < 6; i++) t.equal((await attempt(app, 'office', user.password, '198.51.100.1')).statusCode, 200)
})

t.test('all attempts of one IP are capped per minute, never the refresh grant', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_IP_ATTEMPTS: '100', RATE_LIMIT_ACCOUNT_FAILURES: '1', RATE_LIMIT_IP_FAILURES: '1000000' })
  const user = await register(app, 'busy')
  await register(app, 'other')
  const tokens = await login(app, 'busy', user.password)
  // Registrations count too. One wrong password locks the account; the attempts after it are cheap 429s that still count for the IP.
  t.equal((await attempt(app, 'busy', WRONG)).statusCode, 400)
  for (let i = 0; i < 96; i++) await attempt(app, 'busy', WRONG)
  const capped = await attempt(app, 'other', user.password)
  t.equal(capped.statusCode, 429, 'the 101st attempt of the minute is refused, whatever the account')
  t.match(auditEvents(logs(), 'login.locked').at(-1), { reason: 'ip_attempts' })
  const retryAfter = Number(capped.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}s is within the minute`)

  const rotated = await refresh(app, tokens.refresh_token)
  t.equal(rotated.statusCode, 200, 'the refresh grant of a valid token is never limited')
  t.equal((await app.inject({ method: 'GET', url: '/sessions', headers: bearer(rotated.json<{ access_token: string }>().access_token) })).statusCode, 200)
})

t.test('registration: attempts per IP, and taken names count as failures', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_IP_FAILURES: '3' })
  await register(app, 'taken')
  const hashes = countHashing(app)
  const tries: number[] = []
  for (let i = 0; i < 5; i++) {
    tries.push((await app.inject({ method: 'POST', url: '/users', payload: { username: 'taken', password: 'correct horse battery' } })).statusCode)
  }
  t.same(tries, [409, 409, 409, 429, 429])
  t.equal(hashes(), 3, 'refused registrations are not hashed')
  t.match(auditEvents(logs(), 'registration.limited')[0], { reason: 'ip_failures', ip: '127.0.0.1' })
})

t.test('X-Forwarded-For is believed only from TRUST_PROXY', async (t) => {
  t.test('without TRUST_PROXY a forged header changes nothing', async (t) => {
    const { app } = await setup(t, { RATE_LIMIT_IP_FAILURES: '2' })
    for (let i = 0; i < 2; i++) await attempt(app, `x${i}`, WRONG, '192.0.2.1', { 'x-forwarded-for': `10.0.0.${i}` })
    const response = await attempt(app, 'x9', WRONG, '192.0.2.1', { 'x-forwarded-for': '10.0.0.99' })
    t.equal(response.statusCode, 429, 'the socket address is what counts')
  })

  t.test('with TRUST_PROXY the client address the proxy reports is counted, and shown in the session list', async (t) => {
    const { app } = await setup(t, { RATE_LIMIT_IP_FAILURES: '2', TRUST_PROXY: '192.0.2.0/24, loopback' })
    const user = await register(app, 'proxied')
    for (let i = 0; i < 2; i++) await attempt(app, 'nobody', WRONG, '192.0.2.1', { 'x-forwarded-for': '198.51.100.10' })
    t.equal((await attempt(app, 'nobody', WRONG, '192.0.2.1', { 'x-forwarded-for': '198.51.100.10' })).statusCode, 429)
    const other = await attempt(app, 'proxied', user.password, '192.0.2.1', { 'x-forwarded-for': '198.51.100.11' })
    t.equal(other.statusCode, 200, 'another client behind the same proxy is not affected')
    const sessions = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(other.json<{ access_token: string }>().access_token) })
    t.equal(sessions.json<{ sessions: Array<{ ip: string }> }>().sessions[0]!.ip, '198.51.100.11')

    // A host that is not a trusted proxy cannot pick its bucket.
    for (let i = 0; i < 2; i++) await attempt(app, 'nobody', WRONG, '203.0.113.50', { 'x-forwarded-for': `198.51.100.${20 + i}` })
    t.equal((await attempt(app, 'nobody2', WRONG, '203.0.113.50', { 'x-forwarded-for': '198.51.100.30' })).statusCode, 429)
  })
})

t.test('IPv6 clients are counted per /64', async (t) => {
  t.equal(ipBucket('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64')
  t.equal(ipBucket('2001:db8:1:2::ffff'), '2001:db8:1:2::/64')
  t.equal(ipBucket('::ffff:192.0.2.1'), '192.0.2.1', 'an IPv4-mapped address is its IPv4 address')
  t.equal(ipBucket('192.0.2.1'), '192.0.2.1')
  const { app } = await setup(t, { RATE_LIMIT_IP_FAILURES: '2' })
  await attempt(app, 'v6a', WRONG, '2001:db8:1:2::1')
  await attempt(app, 'v6b', WRONG, '2001:db8:1:2::2')
  t.equal((await attempt(app, 'v6c', WRONG, '2001:db8:1:2:ffff::3')).statusCode, 429, 'hopping inside the /64 does not help')
  t.equal((await attempt(app, 'v6c', WRONG, '2001:db8:1:3::1')).statusCode, 400, 'the next /64 is someone else')
})

t.test('a password change with a wrong current password counts against the account', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '2' })
  const user = await register(app, 'changer')
  const tokens = await login(app, 'changer', user.password)
  const change = async (current: string): Promise<number> => (await app.inject({
    method: 'POST', url: '/users/me/password', headers: bearer(tokens.access_token), payload: { current_password: current, new_password: 'a brand new passphrase' }
  })).statusCode
  t.same([await change(WRONG), await change(WRONG), await change(user.password)], [400, 400, 429],
    'a stolen access token is no way around the lock')
  t.equal(auditEvents(logs(), 'password.change_failed').length, 2)
  t.equal((await attempt(app, 'changer', user.password)).statusCode, 429, 'and the login is locked too')
})

t.test('huge passwords are refused before anything is hashed', async (t) => {
  const { app } = await setup(t, { BODY_LIMIT: String(2 * 1024 * 1024) })
  const { app: defaults } = await setup(t)
  await register(app, 'hugeuser')
  const hashes = countHashing(app)
  const megabyte = 'p'.repeat(1024 * 1024)
  const login = await attempt(app, 'hugeuser', megabyte)
  t.equal(login.statusCode, 400)
  t.equal(login.json<{ error: string }>().error, 'invalid_request')
  const registration = await app.inject({ method: 'POST', url: '/users', payload: { username: 'hugeuser2', password: megabyte } })
  t.equal(registration.statusCode, 400)
  t.equal(hashes(), 0, 'nothing was hashed')
  t.equal((await attempt(defaults, 'hugeuser', megabyte)).statusCode, 413, 'with the default BODY_LIMIT the body itself is too large')
})

t.test('bad rate-limit settings stop the service at start', async (t) => {
  const { loadConfig } = await import('../src/config.js')
  t.throws(() => loadConfig({ RATE_LIMIT_IP_ATTEMPTS: '99' }), /RATE_LIMIT_IP_ATTEMPTS/, 'never below 100 a minute')
  t.throws(() => loadConfig({ RATE_LIMIT_ACCOUNT_FAILURES: '0' }), /RATE_LIMIT_ACCOUNT_FAILURES/)
  t.throws(() => loadConfig({ TRUST_PROXY: 'everyone' }), /TRUST_PROXY/)
  t.throws(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' }), /TRUST_PROXY/)
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.1, 10.1.0.0/16,loopback' }).TRUST_PROXY, ['10.0.0.1', '10.1.0.0/16', 'loopback'])
})
