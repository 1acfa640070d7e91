import t from 'tap'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { decodeRevocationEvent } from '@baton/tokens'
import { loadConfig } from '../src/app.js'
import { clientInstance } from '../src/core/sessions/session-store.js'
import { bearer, decodeJwt, register, setup, type TestContext, type Tokens } from './helper.js'

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
const GATEWAY_SECRET = 'gateway-secret-0123456789abcdef'
// A resource server that may introspect (CLIENTS marks it so).
const CLIENTS = JSON.stringify([{ client_id: 'gateway', client_secret: GATEWAY_SECRET, grant_types: ['client_credentials'], introspection: true }])

// The body is parsed JSON whose shape is what the assertions are there to check.
interface Answer { status: number, body: Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any

/** One client machine: every request leaves from `localAddress` with `userAgent`, over a real socket. */
function machine (port: number, localAddress: string, userAgent: string) {
  const send = async (method: string, path: string, headers: Record<string, string>, payload?: unknown): Promise<Answer> => await new Promise((resolve, reject) => {
    const body = payload === undefined ? undefined : JSON.stringify(payload)
    const req = request({
      host: '127.0.0.1', port, localAddress, method, path, agent: false,
      headers: { 'user-agent': userAgent, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : JSON.parse(text) as Answer['body'] }) })
    })
    req.on('error', reject)
    req.end(body)
  })
  return {
    token: async (payload: Record<string, string>, headers: Record<string, string> = {}) => await send('POST', '/oauth/token', headers, payload),
    get: async (path: string, accessToken: string) => await send('GET', path, bearer(accessToken))
  }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

type Line = Record<string, unknown>
const events = (context: TestContext, name: string): Line[] =>
  context.logs().split('\n').filter((line) => line.includes(`"event":"${name}"`)).map((line) => JSON.parse(line) as Line)

const sidOf = (tokens: { access_token: string }): string => decodeJwt(tokens.access_token).payload.sid as string

async function introspect (app: FastifyInstance, token: string): Promise<{ active: boolean }> {
  const basic = Buffer.from(`gateway:${GATEWAY_SECRET}`).toString('base64')
  return (await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: `Basic ${basic}` }, payload: { token } })).json()
}

/** The sessions the revocation feed announced as ended, for verifiers to refuse their access tokens. */
async function announcedEnded (context: TestContext): Promise<string[]> {
  return (await context.redis.xrange(`${context.prefix}revocations`, '-', '+'))
    .map(([, fields]) => decodeRevocationEvent(fields))
    .flatMap((event) => event?.kind === 'sessions' ? event.sids : [])
}

t.test('a thief on another address replays the just-spent token inside the window: the session ends, for owner and thief', async (t) => {
  const context = await setup(t, { CLIENTS, REFRESH_REUSE_GRACE: '10s' })
  const { app, clock } = context
  const port = await listen(app)
  const owner = machine(port, '127.0.0.1', BROWSER)
  // A careful thief copies the user agent too; the address is what gives it away.
  const thief = machine(port, '127.0.0.2', BROWSER)
  const user = await register(app)

  // As reported: the thief holds one access + refresh token pair, polls GET /sessions for
  // last_used_at to move, and replays the spent refresh token at once. Four rotations.
  for (let round = 1; round <= 4; round++) {
    const login = await owner.token({ grant_type: 'password', username: user.username, password: user.password })
    t.equal(login.status, 200)
    const stolen = login.body as Tokens
    const sid = sidOf(stolen)
    const lastUsed = async (): Promise<unknown> => (await thief.get('/sessions', stolen.access_token)).body.sessions
      .find((session: { id: string }) => session.id === sid).last_used_at
    const before = await lastUsed()

    clock.advance(60_000)
    const rotated = await owner.token({ grant_type: 'refresh_token', refresh_token: stolen.refresh_token })
    t.equal(rotated.status, 200, `round ${round}: the owner's refresh`)
    const current = rotated.body as Tokens
    t.not(await lastUsed(), before, 'the thief sees the session was just used')

    clock.advance(1_000)
    const replay = await thief.token({ grant_type: 'refresh_token', refresh_token: stolen.refresh_token })
    t.equal(replay.status, 400, `round ${round}: the thief's replay inside the window is refused`)
    t.same(replay.body, { error: 'invalid_grant', error_description: 'refresh token was already used; the session is revoked' }, 'and gets no token')

    t.equal((await owner.token({ grant_type: 'refresh_token', refresh_token: current.refresh_token })).status, 400, 'the owner\'s current refresh token died with its session')
    t.equal((await owner.get('/sessions', current.access_token)).status, 401, 'its access tokens are refused at the auth-service')
    t.equal((await thief.get('/sessions', stolen.access_token)).status, 401, 'and so is the stolen one')
    t.same(await introspect(app, current.access_token), { active: false }, 'introspection calls them inactive')
    t.ok((await announcedEnded(context)).includes(sid), 'the revocation feed tells verifiers the session ended')

    t.match(events(context, 'refresh.reuse_detected').find((line) => line.sid === sid), {
      level: 40, user: user.id, client_id: 'baton', reason: 'other_network', ip: '127.0.0.2', user_agent: BROWSER
    }, 'audited as theft, at warn')
    t.match(events(context, 'session.revoked').find((line) => line.sid === sid), { reason: 'refresh_token_reuse' })
  }
  t.same(events(context, 'refresh.grace_retry'), [], 'no replay was taken for a race')
})

t.test('a thief who rotates first: the owner\'s retry inside the window ends the thief\'s branch too', async (t) => {
  const context = await setup(t, { REFRESH_REUSE_GRACE: '10s' })
  const { app } = context
  const port = await listen(app)
  const owner = machine(port, '127.0.0.1', BROWSER)
  const thief = machine(port, '127.0.0.3', BROWSER)
  const user = await register(app)
  const stolen = (await owner.token({ grant_type: 'password', username: user.username, password: user.password })).body as Tokens

  const thiefs = await thief.token({ grant_type: 'refresh_token', refresh_token: stolen.refresh_token })
  t.equal(thiefs.status, 200, 'the thief rotates the stolen token before the owner does')
  const owners = await owner.token({ grant_type: 'refresh_token', refresh_token: stolen.refresh_token })
  t.equal(owners.status, 400, 'the owner is not handed the thief\'s successor')
  t.equal(owners.body.error, 'invalid_grant')
  t.equal((await thief.token({ grant_type: 'refresh_token', refresh_token: (thiefs.body as Tokens).refresh_token })).status, 400, 'the thief\'s successor is dead')
  t.equal((await thief.get('/sessions', (thiefs.body as Tokens).access_token)).status, 401, 'and so is its access token')
  t.match(events(context, 'refresh.reuse_detected'), [{ level: 40, sid: sidOf(stolen), reason: 'other_network', ip: '127.0.0.1' }])
})

t.test('the owner\'s own retries from the same address and user agent still get the same successor', async (t) => {
  const context = await setup(t, { REFRESH_REUSE_GRACE: '10s' })
  const { app, clock } = context
  const port = await listen(app)
  const browser = machine(port, '127.0.0.1', BROWSER)
  const user = await register(app)
  const tokens = (await browser.token({ grant_type: 'password', username: user.username, password: user.password })).body as Tokens

  // Three tabs hold the same refresh token and wake together.
  const tabs = await Promise.all([1, 2, 3].map(async () => await browser.token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })))
  t.same(tabs.map((tab) => tab.status), [200, 200, 200], 'every tab is served')
  t.equal(new Set(tabs.map((tab) => tab.body.refresh_token as string)).size, 1, 'with one successor')
  const successor = tabs[0]!.body.refresh_token as string

  // A response lost on the way back: the client retries a moment later.
  clock.advance(4_000)
  const retry = await browser.token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
  t.equal(retry.status, 200)
  t.equal(retry.body.refresh_token, successor, 'the same successor')
  t.equal((await browser.get('/sessions', retry.body.access_token as string)).status, 200, 'its access token works')
  t.equal((await browser.token({ grant_type: 'refresh_token', refresh_token: successor })).status, 200, 'and the successor rotates as usual')
  t.equal(events(context, 'refresh.grace_retry').length, 3, 'each retry is a grace retry')
  t.same(events(context, 'refresh.reuse_detected'), [], 'none is taken for theft')
})

t.test('the same address with another user agent inside the window is theft', async (t) => {
  const context = await setup(t, { REFRESH_REUSE_GRACE: '10s' })
  const { app } = context
  const user = await register(app)
  const token = async (payload: Record<string, string>, userAgent: string) =>
    await app.inject({ method: 'POST', url: '/oauth/token', remoteAddress: '198.51.100.20', headers: { 'user-agent': userAgent }, payload })
  const first = (await token({ grant_type: 'password', username: user.username, password: user.password }, BROWSER)).json<Tokens>()
  const rotated = (await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token }, BROWSER)).json<Tokens>()

  const replay = await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token }, 'curl/8.5.0')
  t.equal(replay.statusCode, 400)
  t.equal(replay.json().error, 'invalid_grant')
  t.equal((await token({ grant_type: 'refresh_token', refresh_token: rotated.refresh_token }, BROWSER)).statusCode, 400, 'the family is revoked')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(rotated.access_token) })).statusCode, 401, 'its access tokens too')
  t.ok((await announcedEnded(context)).includes(sidOf(first)), 'announced on the feed')
  t.match(events(context, 'refresh.reuse_detected'), [{ level: 40, sid: sidOf(first), reason: 'other_user_agent', ip: '198.51.100.20', user_agent: 'curl/8.5.0' }])

  // A narrower or wider scope does not turn the replay into a mere scope error.
  const second = (await token({ grant_type: 'password', username: user.username, password: user.password }, BROWSER)).json<Tokens>()
  await token({ grant_type: 'refresh_token', refresh_token: second.refresh_token }, BROWSER)
  const scoped = await token({ grant_type: 'refresh_token', refresh_token: second.refresh_token, scope: 'admin' }, 'curl/8.5.0')
  t.equal(scoped.json().error, 'invalid_grant', 'theft with a scope asked for is still theft')
  t.equal(events(context, 'refresh.reuse_detected').length, 2)
})

t.test('behind a trusted proxy: IPv6 clients are one client per /64, IPv4-mapped addresses are their IPv4 address', async (t) => {
  const context = await setup(t, { TRUST_PROXY: '127.0.0.1', REFRESH_REUSE_GRACE: '10s' })
  const { app } = context
  const user = await register(app)
  const token = async (payload: Record<string, string>, from: string) =>
    await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'user-agent': BROWSER, 'x-forwarded-for': from }, payload })
  const rotateFrom = async (from: string): Promise<{ first: Tokens, rotated: Tokens }> => {
    const first = (await token({ grant_type: 'password', username: user.username, password: user.password }, from)).json<Tokens>()
    const rotated = (await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token }, from)).json<Tokens>()
    return { first, rotated }
  }

  const privacy = await rotateFrom('2001:db8:aa:1::10')
  // A privacy address of the same host, or another device in the same home network.
  const sameNet = await token({ grant_type: 'refresh_token', refresh_token: privacy.first.refresh_token }, '2001:DB8:AA:1:FFFF:FFFF:FFFF:1')
  t.equal(sameNet.statusCode, 200, 'the same /64 is the same client')
  t.equal(sameNet.json().refresh_token, privacy.rotated.refresh_token, 'and gets the same successor')

  const mapped = await rotateFrom('192.0.2.7')
  const asMapped = await token({ grant_type: 'refresh_token', refresh_token: mapped.first.refresh_token }, '::ffff:192.0.2.7')
  t.equal(asMapped.statusCode, 200, 'an IPv4-mapped address is the IPv4 client')
  t.equal(asMapped.json().refresh_token, mapped.rotated.refresh_token)

  const other = await rotateFrom('2001:db8:aa:1::10')
  const otherNet = await token({ grant_type: 'refresh_token', refresh_token: other.first.refresh_token }, '2001:db8:aa:2::10')
  t.equal(otherNet.statusCode, 400, 'the neighbouring /64 is another client')
  t.equal(otherNet.json().error, 'invalid_grant')
  t.equal((await token({ grant_type: 'refresh_token', refresh_token: other.rotated.refresh_token }, '2001:db8:aa:1::10')).statusCode, 400, 'the family is revoked')
  t.match(events(context, 'refresh.reuse_detected'), [{ level: 40, sid: sidOf(other.first), reason: 'other_network', ip: '2001:db8:aa:2::10' }])
})

t.test('clientInstance: the network is an IPv4 address or an IPv6 /64; the user agent is compared whole', async (t) => {
  const network = (ip: string): string => clientInstance({ ip, userAgent: BROWSER }).network
  t.equal(network('2001:db8:1:2::1'), network('2001:0db8:0001:0002:ffff:0:0:9'), 'one /64, however the address is written')
  t.not(network('2001:db8:1:2::1'), network('2001:db8:1:3::1'), 'the next /64 is another network')
  t.not(network('2001:db8:1:2::1'), network('2001:db9:1:2::1'))
  t.equal(network('::ffff:192.0.2.1'), network('192.0.2.1'), 'IPv4-mapped IPv6 is its IPv4 address')
  t.not(network('192.0.2.1'), network('192.0.2.2'), 'IPv4 addresses count one by one')
  t.not(network('::ffff:192.0.2.1'), network('::ffff:192.0.2.2'))
  const agent = (userAgent: string): string => clientInstance({ ip: '192.0.2.1', userAgent }).userAgent
  t.equal(agent(BROWSER), agent(BROWSER))
  t.not(agent(BROWSER), agent(`${BROWSER} `), 'one character differs: another user agent')
  t.not(agent(`${'x'.repeat(300)}a`), agent(`${'x'.repeat(300)}b`), 'compared past the length kept for display')
  t.not(agent(''), agent(BROWSER), 'no user agent is a user agent of its own')
  t.equal(agent('x'.repeat(10_000)).length, 43, 'stored as a bounded hash')
})

t.test('grace retries beyond REFRESH_GRACE_RETRIES are refused; the session lives on', async (t) => {
  const context = await setup(t, { REFRESH_GRACE_RETRIES: '2', REFRESH_REUSE_GRACE: '10s' })
  const { app } = context
  const user = await register(app)
  const refresh = async (refreshToken: string) => await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'refresh_token', refresh_token: refreshToken } })
  const first = (await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: user.username, password: user.password } })).json<Tokens>()
  const successor = (await refresh(first.refresh_token)).json<Tokens>().refresh_token

  for (let retry = 1; retry <= 2; retry++) {
    const response = await refresh(first.refresh_token)
    t.equal(response.statusCode, 200, `retry ${retry} is served`)
    t.equal(response.json().refresh_token, successor)
  }
  const third = await refresh(first.refresh_token)
  t.equal(third.statusCode, 400, 'the third is refused')
  t.same(third.json(), { error: 'invalid_grant', error_description: 'refresh token was already used and retried too often; use the refresh token an earlier answer returned' })
  t.notOk('access_token' in third.json(), 'and mints no access token')

  const next = await refresh(successor)
  t.equal(next.statusCode, 200, 'the session lives: its successor rotates')
  t.equal((await refresh(successor)).json().refresh_token, next.json().refresh_token, 'and each rotation has retries of its own')
  t.same(events(context, 'refresh.reuse_detected'), [], 'no theft reported')
  t.match(events(context, 'refresh.grace_exhausted'), [{ level: 40, user: user.id, sid: sidOf(first), client_id: 'baton' }])
  t.match((await app.inject('/metrics')).body, /baton_auth_refreshes_total\{outcome="grace_exhausted"\} 1\b/)
})

t.test('REFRESH_GRACE_RETRIES: 5 by default, at least 1', async (t) => {
  t.equal(loadConfig({}).REFRESH_GRACE_RETRIES, 5)
  t.throws(() => loadConfig({ REFRESH_GRACE_RETRIES: '0' }), /REFRESH_GRACE_RETRIES/)
  t.throws(() => loadConfig({ REFRESH_GRACE_RETRIES: 'many' }), /REFRESH_GRACE_RETRIES/)
})
