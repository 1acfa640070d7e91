import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { setup, register, login, refresh, bearer, keysWithTtl, testClock } from './helper.js'
import { ipBucket } from '../src/core/ip-bucket.js'

const WRONG = 'not the password at all'

async function attempt (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1', headers: Record<string, string> = {}, extra: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/oauth/token', remoteAddress, headers, payload: { grant_type: 'password', username, password, ...extra } })
}

/** A password grant from a client holding `deviceToken`. */
async function attemptOnDevice (app: FastifyInstance, username: string, password: string, remoteAddress: string, deviceToken: string): Promise<LightMyRequestResponse> {
  return await attempt(app, username, password, remoteAddress, {}, { device_token: deviceToken })
}

/** The device token a successful login hands out. */
function deviceTokenOf (response: LightMyRequestResponse): string {
  const token = response.json<{ device_token?: unknown }>().device_token
  if (response.statusCode !== 200 || typeof token !== 'string') throw new Error(`no device token: ${response.statusCode} ${response.body}`)
  return token
}

/** A password grant over a real socket from `localAddress` (any address of 127.0.0.0/8 on Linux): the limits count the connection's own address. */
async function socketLogin (app: FastifyInstance, localAddress: string, fields: Record<string, string>): Promise<{ status: number, body: Record<string, unknown> }> {
  const { port } = app.server.address() as AddressInfo
  const payload = JSON.stringify({ grant_type: 'password', ...fields })
  return await new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, localAddress, method: 'POST', path: '/oauth/token', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).on('end', () => {
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> })
      })
    })
    request.on('error', reject).end(payload)
  })
}

/** Log lines at warn, the level an alert is raised on. */
function warnings (logs: string): Array<Record<string, unknown>> {
  return logs.split('\n').filter((line) => line.includes('"level":40')).map((line) => JSON.parse(line) as Record<string, unknown>)
}

/** One sample of the Prometheus text. */
async function rateLimited (app: FastifyInstance, action: string, limit: string): Promise<number | undefined> {
  const line = (await app.inject('/metrics')).body.split('\n').find((text) => text.startsWith(`baton_auth_rate_limited_total{action="${action}",limit="${limit}"} `))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

/** Counts real password hashes and verifications, passing every call on to the real hasher. */
function countHashing (app: FastifyInstance): () => number {
  let calls = 0
  const hasher = app.auth.passwords as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
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
  t.equal(locked.length, 1, 'one warning for the lock, not one per refused attempt')
  t.match(locked[0], { level: 40, reason: 'account_failures', client_id: 'baton', ip: '127.0.0.1' })
  t.notOk('known_client' in locked[0]!, 'the budget of clients the account does not know')
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
  // Long enough that three password checks fit in it on a loaded machine; the lock lasts what is left.
  const { app, redis, prefix } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '2', RATE_LIMIT_FAILURE_WINDOW: '5' })
  const user = await register(app, 'sleeper')
  await attempt(app, 'sleeper', WRONG)
  await attempt(app, 'sleeper', WRONG)
  const locked = await attempt(app, 'sleeper', user.password)
  t.equal(locked.statusCode, 429)
  const retryAfter = Number(locked.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After ${retryAfter} s: what is left of the 5 s window`)
  // The wait a client is told to make (rounded up): Redis's TTL on the lock has run out by then.
  await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000))
  t.equal((await attempt(app, 'sleeper', user.password)).statusCode, 200, 'after Retry-After the right password works again')
  await attempt(app, 'sleeper', WRONG)
  const keys = await keysWithTtl(redis, `${prefix}rate:`)
  t.ok([...keys.keys()].some((key) => key.includes(':known-ip:')) && [...keys.keys()].some((key) => key.endsWith(':registrations')),
    `the known address and the registration count are kept too (${keys.size} rate keys)`)
  // -2: a one-second counter that expired between the scan and its PTTL.
  t.same([...keys].filter(([, ttl]) => ttl === -1).map(([key]) => key), [], 'every rate key has a TTL')
})

t.test('a lock whose counter lost its TTL still ends: the refusal gives it one', async (t) => {
  const { app, redis, prefix } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '2', RATE_LIMIT_IP_FAILURES: '2', RATE_LIMIT_FAILURE_WINDOW: '1' })
  const user = await register(app, 'timeless')
  /** Drops the TTL of every rate-limit counter, as a restore that keeps no expiry would. */
  const persistCounters = async (): Promise<void> => {
    for (const key of (await keysWithTtl(redis, `${prefix}rate:`)).keys()) await redis.persist(key)
  }
  /** Answers with the right password from `address` until one is not a 429; fails after the deadline. */
  const unlockedWithin = async (address: string, ms: number): Promise<number> => {
    const deadline = Date.now() + ms
    let status = 429
    while (status === 429 && Date.now() < deadline) {
      status = (await attempt(app, 'timeless', user.password, address)).statusCode
      if (status === 429) await new Promise((resolve) => setTimeout(resolve, 200))
    }
    return status
  }

  const locks: Array<{ what: string, failures: Array<[username: string, address: string]>, from: string }> = [
    // Two wrong guesses at names that do not exist lock the address.
    { what: 'an IP\'s failure counter', failures: [['nobody-1', '203.0.113.50'], ['nobody-2', '203.0.113.50']], from: '203.0.113.50' },
    // One wrong guess from each of two addresses locks the account for the clients it does not know.
    { what: 'an account\'s failure counter', failures: [['timeless', '203.0.113.51'], ['timeless', '203.0.113.52']], from: '203.0.113.53' }
  ]
  for (const { what, failures, from } of locks) {
    for (const [username, address] of failures) await attempt(app, username, WRONG, address)
    await persistCounters()
    const locked = await attempt(app, 'timeless', user.password, from)
    t.equal(locked.statusCode, 429, `${what}: locked`)
    t.equal(locked.headers['retry-after'], '1', `${what}: for the rest of the window`)
    t.equal(await unlockedWithin(from, 5000), 200, `${what}: the right password works again once the window has passed`)
  }
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

t.test('an attacker elsewhere cannot lock out a client the account knows: its device token, or the address it logged in from', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '5' })
  const owner = await register(app, 'owner')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const right = { username: 'owner', password: owner.password }
  const wrong = { username: 'owner', password: WRONG }

  const home = await socketLogin(app, '127.0.0.2', right)
  t.equal(home.status, 200, 'the owner logs in at home')
  const deviceToken = home.body.device_token
  t.type(deviceToken, 'string', 'and gets a device token')

  const attacker = ['127.0.0.3', '127.0.0.4', '127.0.0.5']
  const guesses: number[] = []
  for (let i = 0; i < 9; i++) guesses.push((await socketLogin(app, attacker[i % 3]!, wrong)).status)
  t.same(guesses, [400, 400, 400, 400, 400, 429, 429, 429, 429], 'five guesses from three addresses lock the account for unknown clients')
  t.equal((await socketLogin(app, '127.0.0.6', right)).status, 429, 'an unknown client is locked out, whatever the password')

  const away = await socketLogin(app, '127.0.0.7', { ...right, device_token: deviceToken as string })
  t.equal(away.status, 200, 'the owner\'s device logs in from a new address')
  t.type(away.body.access_token, 'string')
  t.type(away.body.device_token, 'string', 'with its device token renewed')
  t.equal((await socketLogin(app, '127.0.0.2', right)).status, 200, 'the address of the earlier login logs in without a device token')

  for (const address of attacker) t.equal((await socketLogin(app, address, wrong)).status, 429, `the attacker at ${address} is still refused`)
  t.equal((await socketLogin(app, '127.0.0.3', right)).status, 429, 'even with the right password')

  const locked = auditEvents(logs(), 'login.locked')
  t.equal(locked.length, 1, 'one warning for the whole flood')
  t.match(locked[0], { reason: 'account_failures', ip: '127.0.0.5' })
})

t.test('a forged, expired or another account\'s device token makes no client known', async (t) => {
  const clock = testClock()
  const { app } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '3', RATE_LIMIT_KNOWN_CLIENT_TTL: '1h' }, { clock })
  const victim = await register(app, 'target')
  const other = await register(app, 'accomplice')
  const token = deviceTokenOf(await attempt(app, 'target', victim.password, '198.51.100.1'))
  const othersToken = deviceTokenOf(await attempt(app, 'accomplice', other.password, '198.51.100.2'))
  for (let i = 0; i < 3; i++) t.equal((await attempt(app, 'target', WRONG, '203.0.113.1')).statusCode, 400)

  const flipped = token.slice(0, 30) + (token[30] === 'A' ? 'B' : 'A') + token.slice(31)
  const presented: Array<[string, string]> = [
    ['a token with one character changed', flipped],
    ['another account\'s token', othersToken],
    ['a made-up token of the right length', 'A'.repeat(token.length)],
    ['garbage', 'not a device token'],
    ['an empty token', '']
  ]
  for (const [what, forged] of presented) {
    const response = await attemptOnDevice(app, 'target', victim.password, '203.0.113.2', forged)
    t.equal(response.statusCode, 429, `${what}: the right password is still refused`)
  }
  t.equal((await attemptOnDevice(app, 'target', victim.password, '203.0.113.3', token)).statusCode, 200, 'the genuine token is a known client')

  clock.advance(3_600_000)
  t.equal((await attemptOnDevice(app, 'target', victim.password, '203.0.113.4', token)).statusCode, 429, 'an hour later (RATE_LIMIT_KNOWN_CLIENT_TTL) it is not')
})

t.test('a known client\'s own failures lock that client, and leave the others alone', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '3' })
  const user = await register(app, 'clumsy')
  const token = deviceTokenOf(await attempt(app, 'clumsy', user.password, '198.51.100.1'))
  const hashes = countHashing(app)

  const onDevice: number[] = []
  for (let i = 0; i < 4; i++) onDevice.push((await attemptOnDevice(app, 'clumsy', i < 3 ? WRONG : user.password, '198.51.100.50', token)).statusCode)
  t.same(onDevice, [400, 400, 400, 429], 'three failures on the device lock the device, wherever it is')
  t.equal(hashes(), 3, 'its locked attempt never reached the hasher')
  t.match(auditEvents(logs(), 'login.locked').at(-1), { reason: 'account_failures', known_client: 'device', ip: '198.51.100.50' })

  t.equal((await attempt(app, 'clumsy', user.password, '198.51.100.1')).statusCode, 200, 'the known address has a budget of its own')
  t.equal((await attempt(app, 'clumsy', user.password, '203.0.113.9')).statusCode, 200, 'and so have clients the account does not know')

  const atHome: number[] = []
  for (let i = 0; i < 4; i++) atHome.push((await attempt(app, 'clumsy', i < 3 ? WRONG : user.password, '198.51.100.1')).statusCode)
  t.same(atHome, [400, 400, 400, 429], 'the known address locks after its own three failures')
  t.match(auditEvents(logs(), 'login.locked').at(-1), { reason: 'account_failures', known_client: 'address', ip: '198.51.100.1' })
})

t.test('a flood of refused logins is one warning per lock; the metrics count every refusal', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_ACCOUNT_FAILURES: '2' })
  await register(app, 'flooded')
  for (let i = 0; i < 2; i++) await attempt(app, 'flooded', WRONG, '203.0.113.30')
  const flood = await Promise.all(Array.from({ length: 50 }, async () => (await attempt(app, 'flooded', WRONG, '203.0.113.30')).statusCode))
  t.same(new Set(flood), new Set([429]))
  t.equal(warnings(logs()).length, 1, 'fifty refusals, one warning')
  t.match(warnings(logs())[0], { event: 'login.locked', reason: 'account_failures', ip: '203.0.113.30' })
  t.equal(await rateLimited(app, 'login', 'account_failures'), 50)
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

t.test('registration: a budget per address of its own, far below the login limits, counted before the hash', async (t) => {
  const { app, logs } = await setup(t, { RATE_LIMIT_REGISTRATIONS: '3', RATE_LIMIT_REGISTRATION_WINDOW: '1h' })
  const hashes = countHashing(app)
  const registerFrom = async (remoteAddress: string, username: string): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'POST', url: '/users', remoteAddress, payload: { username, password: 'correct horse battery' } })

  const first: number[] = []
  for (let i = 0; i < 3; i++) first.push((await registerFrom('203.0.113.20', `flood${i}`)).statusCode)
  t.same(first, [201, 201, 201])
  const refused = await registerFrom('203.0.113.20', 'flood3')
  t.equal(refused.statusCode, 429, 'the fourth registration of the hour is refused')
  t.same(refused.json(), { error: 'slow_down', error_description: 'too many attempts; try again later' })
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter > 3500 && retryAfter <= 3600, `Retry-After ${retryAfter}s is the rest of the hour`)
  t.equal((await registerFrom('203.0.113.21', 'elsewhere')).statusCode, 201, 'another address registers')

  const flood = await Promise.all(Array.from({ length: 50 }, async (_, i) => (await registerFrom('203.0.113.20', `flood${4 + i}`)).statusCode))
  t.same(new Set(flood), new Set([429]), 'a flood of fifty more: every one refused')
  t.equal(hashes(), 4, 'refused registrations never reach the hasher')
  for (let i = 3; i < 54; i++) {
    if (await app.auth.users.findByUsername(`flood${i}`) !== undefined) t.fail(`flood${i} was created`)
  }
  const warned = warnings(logs())
  t.equal(warned.length, 1, 'fifty-one refusals, one warning')
  t.match(warned[0], { event: 'registration.limited', reason: 'ip_registrations', ip: '203.0.113.20' })
  t.equal(await rateLimited(app, 'registration', 'ip_registrations'), 51, 'the metrics count every refusal')
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
  t.throws(() => loadConfig({ RATE_LIMIT_REGISTRATIONS: '0' }), /RATE_LIMIT_REGISTRATIONS/)
  t.throws(() => loadConfig({ RATE_LIMIT_REGISTRATION_WINDOW: 'hourly' }), /RATE_LIMIT_REGISTRATION_WINDOW/)
  t.throws(() => loadConfig({ RATE_LIMIT_KNOWN_CLIENT_TTL: '10s' }), /RATE_LIMIT_KNOWN_CLIENT_TTL/)
  t.match(loadConfig({}), { RATE_LIMIT_REGISTRATIONS: 10, RATE_LIMIT_REGISTRATION_WINDOW: 3600, RATE_LIMIT_KNOWN_CLIENT_TTL: 30 * 86_400 })
  t.throws(() => loadConfig({ TRUST_PROXY: 'everyone' }), /TRUST_PROXY/)
  t.throws(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' }), /TRUST_PROXY/)
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.1, 10.1.0.0/16,loopback' }).TRUST_PROXY, ['10.0.0.1', '10.1.0.0/16', 'loopback'])
})
