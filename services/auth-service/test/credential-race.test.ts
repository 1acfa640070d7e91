import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { setup, register, login, refresh, bearer, decodeJwt, keysWithTtl, type TestContext, type Tokens } from './helper.js'

// A login reads the password hash, spends milliseconds of argon2 on it, and
// only then creates its session. A password change or "log out everywhere"
// that lands in between must still leave that login without a session.

// Every login here is meant to reach the password check: no rate limit in the
// way, and no 503 when a loaded test machine delays Redis past its usual second.
const ENV = {
  RATE_LIMIT_ACCOUNT_FAILURES: '1000000',
  RATE_LIMIT_IP_FAILURES: '1000000',
  RATE_LIMIT_IP_ATTEMPTS: '1000000',
  REDIS_COMMAND_TIMEOUT: '10000'
}
const NEW_PASSWORD = 'the owner takes it back'
const THIEF = { 'user-agent': 'Thief/1.0' }

interface Answer { status: number, body: Record<string, unknown> }

interface SessionsChange {
  name: string
  /** Whether the session that asked for the change lives on. */
  keepsCurrent: boolean
  /** Sends the change with the owner's access token; answers 204. */
  send: (call: (method: string, url: string, token: string, payload?: Record<string, unknown>) => Promise<Answer>, owner: Tokens, password: string) => Promise<Answer>
  /** The password that logs in after the change. */
  passwordAfter: (password: string) => string
}

const passwordChange = (keep: boolean): SessionsChange => ({
  name: `a password change with keep_current_session=${String(keep)}`,
  keepsCurrent: keep,
  send: async (call, owner, password) => await call('POST', '/users/me/password', owner.access_token, { current_password: password, new_password: NEW_PASSWORD, keep_current_session: keep }),
  passwordAfter: () => NEW_PASSWORD
})

const CHANGES: SessionsChange[] = [
  passwordChange(false),
  passwordChange(true),
  {
    name: 'DELETE /sessions (log out everywhere)',
    keepsCurrent: false,
    send: async (call, owner) => await call('DELETE', '/sessions', owner.access_token),
    passwordAfter: (password) => password
  }
]

const injectCall = (app: FastifyInstance) => async (method: string, url: string, token: string, payload?: Record<string, unknown>): Promise<Answer> => {
  const response = await app.inject({ method: method as 'POST', url, headers: bearer(token), ...(payload === undefined ? {} : { payload }) })
  return { status: response.statusCode, body: response.body === '' ? {} : response.json() }
}

const oldPasswordLogin = (username: string, password: string) => ({ grant_type: 'password', username, password })

const sid = (tokens: Tokens): string => decodeJwt(tokens.access_token).payload.sid as string

/** How many of `values` there are of each, e.g. `{ 400: 50 }`. */
function tally (values: Array<string | number>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

/**
 * Lets the next `count` password verifications run and holds each answer
 * until `release()`. `verified` resolves once all of them have checked the
 * hash they read: those logins then wait, with a password found right, to
 * create their sessions. Nothing is left to the scheduler's timing.
 */
function holdVerifiedLogins (app: FastifyInstance, count: number): { verified: Promise<void>, release: () => void } {
  const verify = app.auth.passwords.verify
  let started = 0
  let finished = 0
  let allVerified!: () => void
  let open!: () => void
  const verified = new Promise<void>((resolve) => { allVerified = resolve })
  const released = new Promise<void>((resolve) => { open = resolve })
  app.auth.passwords.verify = async (hash, password) => {
    if (started === count) return await verify(hash, password)
    started++
    const valid = await verify(hash, password)
    if (++finished === count) allVerified()
    await released
    return valid
  }
  return { verified, release: () => { app.auth.passwords.verify = verify; open() } }
}

/**
 * After the change: the user's only sessions are a fresh login's and the kept
 * one, in the listing and in Redis; every token handed to a racing login is
 * refused, its refresh token with invalid_grant, its access token at the auth-service.
 */
async function onlyTheseSessionsLive (t: Test, { app, redis, prefix }: TestContext, user: { id: string, username: string }, password: string, kept: Tokens[], handedOut: Tokens[]): Promise<void> {
  const fresh = await login(app, user.username, password)
  const expected = [sid(fresh), ...kept.map(sid)].sort()
  const listing = await app.inject({ method: 'GET', url: '/sessions', headers: bearer(fresh.access_token) })
  t.equal(listing.statusCode, 200)
  t.same(listing.json<{ sessions: Array<{ id: string }> }>().sessions.map((session) => session.id).sort(), expected,
    'GET /sessions lists a fresh login and the kept session, nothing else')
  t.same((await redis.zrange(`${prefix}user:{${user.id}}:sessions`, 0, -1)).sort(), expected, 'the session index holds no other')
  const sessionKeys = [...(await keysWithTtl(redis, prefix)).keys()].filter((key) => key.includes(':session:'))
  t.same(sessionKeys.map((key) => key.split(':session:')[1]).sort(), expected, 'Redis holds no other session')

  const refreshes = await Promise.all(handedOut.map(async (tokens) => await refresh(app, tokens.refresh_token)))
  t.same(tally(refreshes.map((response) => `${response.statusCode} ${response.json<{ error: string }>().error}`)),
    handedOut.length === 0 ? {} : { '400 invalid_grant': handedOut.length }, 'every refresh token a racing login got is refused')
  const calls = await Promise.all(handedOut.map(async (tokens) => await app.inject({ method: 'GET', url: '/sessions', headers: bearer(tokens.access_token) })))
  t.same(tally(calls.map((response) => response.statusCode)), handedOut.length === 0 ? {} : { 401: handedOut.length },
    'every access token a racing login got is refused where sessions are checked')
}

for (const change of CHANGES) {
  t.test(`50 logins verified against the old credentials, held until ${change.name} has answered: invalid_grant, no session left`, async (t) => {
    const LOGINS = 50
    const context = await setup(t, ENV)
    const { app, logs } = context
    const user = await register(app)
    const owner = await login(app, user.username, user.password)

    const held = holdVerifiedLogins(app, LOGINS)
    const racing = Array.from({ length: LOGINS }, async () => await app.inject({
      method: 'POST', url: '/oauth/token', headers: THIEF, payload: oldPasswordLogin(user.username, user.password)
    }))
    await held.verified
    const changed = await change.send(injectCall(app), owner, user.password)
    t.equal(changed.status, 204, `${change.name} answers 204 while ${LOGINS} logins wait to create their sessions`)
    held.release()
    const answers = await Promise.all(racing)

    t.same(tally(answers.map((response) => `${response.statusCode} ${response.json<{ error?: string }>().error ?? ''}`)), { '400 invalid_grant': LOGINS },
      'each login verified before the change is refused')
    t.match(answers[0]?.json(), { error: 'invalid_grant', error_description: /changed while signing in/ })
    t.equal(answers[0]?.headers['cache-control'], 'no-store')
    const handedOut = answers.filter((response) => response.statusCode === 200).map((response) => response.json<Tokens>())
    await onlyTheseSessionsLive(t, context, user, change.passwordAfter(user.password), change.keepsCurrent ? [owner] : [], handedOut)

    const refused = logs().split('\n').filter((line) => line.includes('"event":"login.failed"')).map((line) => JSON.parse(line) as Record<string, unknown>)
    t.equal(refused.length, LOGINS, 'each refusal is audited')
    t.match(refused[0], { level: 30, user: user.id, client_id: 'baton', reason: 'credential_changed', user_agent: 'Thief/1.0', ip: '127.0.0.1' })
    t.notOk(logs().includes(user.password) || logs().includes(NEW_PASSWORD), 'no password in the logs')
  })
}

t.test('a login verified against the old hash creates no session once the hash is replaced, before any session is ended', async (t) => {
  // What remains if a password change's second step (ending the sessions) fails after the hash was swapped.
  const LOGINS = 5
  const context = await setup(t, ENV)
  const { app } = context
  const user = await register(app)
  const before = await app.auth.users.findById(user.id)
  const held = holdVerifiedLogins(app, LOGINS)
  const racing = Array.from({ length: LOGINS }, async () => await app.inject({
    method: 'POST', url: '/oauth/token', headers: THIEF, payload: oldPasswordLogin(user.username, user.password)
  }))
  await held.verified
  t.ok(await app.auth.users.replacePasswordHash(user.id, before!.passwordHash, await app.auth.passwords.hash(NEW_PASSWORD), app.auth.clock()), 'the hash is swapped')
  held.release()
  const answers = await Promise.all(racing)
  t.same(tally(answers.map((response) => `${response.statusCode} ${response.json<{ error?: string }>().error ?? ''}`)), { '400 invalid_grant': LOGINS })
  await onlyTheseSessionsLive(t, context, user, NEW_PASSWORD, [], [])
})

// The attack as reported: a thief keeps logins with the old password in
// flight over real sockets while the owner changes the password.
for (const keep of [false, true]) {
  t.test(`a thief keeping 12 logins with the old password in flight over a real socket around a password change (keep_current_session=${String(keep)}) keeps no session`, async (t) => {
    const THIEVES = 12
    const context = await setup(t, ENV)
    const { app } = context
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const call = async (method: string, url: string, headers: Record<string, string>, payload?: Record<string, unknown>): Promise<Answer> => {
      const response = await fetch(`${base}${url}`, {
        method, headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, body: payload === undefined ? undefined : JSON.stringify(payload)
      })
      const text = await response.text()
      return { status: response.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
    }
    const user = await register(app)
    const owner = await login(app, user.username, user.password)

    let changed = false
    let sent = 0
    let underWay!: () => void
    const twoRoundsSent = new Promise<void>((resolve) => { underWay = resolve })
    const answers: Answer[] = []
    // Each thief sends its next login as soon as the last one answers, until the change has answered, and one more.
    const thief = async (): Promise<void> => {
      for (let last = false; !last;) {
        last = changed
        if (++sent === 2 * THIEVES) underWay()
        answers.push(await call('POST', '/oauth/token', THIEF, oldPasswordLogin(user.username, user.password)))
      }
    }
    const thieves = Array.from({ length: THIEVES }, thief)
    await twoRoundsSent
    const change = await passwordChange(keep).send(async (method, url, token, payload) => await call(method, url, bearer(token), payload), owner, user.password)
    changed = true
    await Promise.all(thieves)
    t.equal(change.status, 204)

    const outcomes = tally(answers.map(({ status, body }) => status === 200 ? '200' : `${status} ${String(body.error_description)}`))
    t.comment(`${answers.length} logins: ${JSON.stringify(outcomes)}`)
    t.ok(answers.every(({ status, body }) => status === 200 || (status === 400 && body.error === 'invalid_grant')), 'every login answers 200 or 400 invalid_grant')
    const handedOut = answers.filter(({ status }) => status === 200).map(({ body }) => body as unknown as Tokens)
    await onlyTheseSessionsLive(t, context, user, NEW_PASSWORD, keep ? [owner] : [], handedOut)
  })
}
