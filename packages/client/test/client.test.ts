// The client against a real auth-service on a real socket, in Node. Time is
// a clock the test moves, shared by the auth-service and the client, so
// "about to expire" is reached without waiting.
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { BatonClientError, createClient, MemoryTokenStore, type BatonClient, type ClientEvents, type ClientOptions } from '../src/index.js'
import { PASSWORD, startAuthService, testClock, type AuthService, type TestClock } from './helper.js'

const TTL_MS = 900_000 // ACCESS_TOKEN_TTL's default, 15 min

interface Signed {
  client: BatonClient
  store: MemoryTokenStore
  ended: Array<ClientEvents['session-ended']>
}

async function signedIn (auth: AuthService, clock: TestClock, username: string, options: Partial<ClientOptions> = {}): Promise<Signed> {
  const store = new MemoryTokenStore()
  const client = createClient({ issuer: auth.url, tokenStore: store, now: clock.now, ...options })
  const ended: Array<ClientEvents['session-ended']> = []
  client.on('session-ended', (event) => { ended.push(event) })
  await client.login(username, PASSWORD)
  return { client, store, ended }
}

async function setup (t: Test, env: Record<string, string> = {}): Promise<{ auth: AuthService, clock: TestClock, username: string }> {
  const clock = testClock()
  const auth = await startAuthService(t, env, { clock })
  return { auth, clock, username: await auth.register() }
}

/** A direct refresh grant, as another program holding the token would send it. */
async function refreshDirectly (auth: AuthService, refreshToken: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await fetch(`${auth.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }) })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

t.test('login, then fetch with the access token; a wrong password is invalid_grant', async (t) => {
  const { auth, clock, username } = await setup(t)
  const client = createClient({ issuer: auth.url, now: clock.now })
  t.notOk(client.signedIn, 'signed out before the login')
  await t.rejects(client.fetch(`${auth.url}/sessions`), { code: 'not_signed_in' }, 'fetch without a session: not_signed_in, and nothing sent')

  await t.rejects(client.login(username, 'not the password at all'), { name: 'BatonClientError', code: 'invalid_grant', status: 400 })
  t.notOk(client.signedIn)

  await client.login(username, PASSWORD)
  t.ok(client.signedIn)
  t.equal(client.expiresAt, clock.now() + TTL_MS, 'the access token expires ACCESS_TOKEN_TTL after the login, by the client\'s clock')
  const response = await client.fetch(`${auth.url}/sessions`)
  t.equal(response.status, 200, 'the auth-service accepted the access token')
  const { sessions } = await response.json() as { sessions: Array<{ id: string, current: boolean }> }
  t.equal(sessions.length, 1)
  t.equal(sessions[0]!.id, client.sessionId, 'sessionId is the session\'s sid')
  t.equal(await auth.refreshes('rotated'), 0, 'no refresh for a fresh token')
})

t.test('the access token is refreshed shortly before it expires, not earlier', async (t) => {
  const { auth, clock, username } = await setup(t)
  const { client, store } = await signedIn(auth, clock, username, { refreshSkewMs: 30_000 })
  const first = await store.get('refresh_token')
  const refreshed: number[] = []
  client.on('refreshed', ({ expiresAt, fromOtherTab }) => { if (!fromOtherTab) refreshed.push(expiresAt) })

  clock.advance(TTL_MS - 31_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200)
  t.equal(await auth.refreshes('rotated'), 0, '31 s before expiry: the token is used as it is')

  clock.advance(2_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200)
  t.equal(await auth.refreshes('rotated'), 1, '29 s before expiry: refreshed first')
  t.same(refreshed, [clock.now() + TTL_MS], 'a refreshed event with the new expiry')
  t.not(await store.get('refresh_token'), first, 'the rotated refresh token replaced the spent one in the store')

  clock.advance(60_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200)
  t.equal(await auth.refreshes('rotated'), 1, 'the new token is used until it is due in its turn')
})

t.test('50 concurrent fetches as the token expires: one refresh serves them all', async (t) => {
  const { auth, clock, username } = await setup(t)
  let tokenRequests = 0
  const { client, ended } = await signedIn(auth, clock, username, {
    fetch: async (input, init) => {
      if (String(input).endsWith('/oauth/token')) tokenRequests++
      return await fetch(input, init)
    }
  })
  tokenRequests = 0

  clock.advance(TTL_MS)
  const answers = await Promise.all(Array.from({ length: 50 }, async () => (await client.fetch(`${auth.url}/sessions`)).status))
  t.same(answers, Array(50).fill(200), 'all 50 answered 200')
  t.equal(await auth.refreshes('rotated'), 1, 'exactly one rotation (baton_auth_refreshes_total{outcome="rotated"})')
  t.equal(await auth.refreshes('grace_retry'), 0, 'and no retry of a spent token')
  t.equal(tokenRequests, 1, 'one request to the token endpoint for 50 callers')
  t.same(ended, [], 'nobody was signed out')
})

t.test('a 401 from the API: one refresh, then the request again, body and all', async (t) => {
  const { auth, clock, username } = await setup(t)
  const seen: Array<{ authorization: string | undefined, body: string }> = []
  const api = createServer((request: IncomingMessage, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => { body += chunk.toString() })
    request.on('end', () => {
      seen.push({ authorization: request.headers.authorization, body })
      // The first token is refused, as an API that no longer trusts it would (a key revoked, a clock ahead).
      response.statusCode = seen.length === 1 ? 401 : 200
      response.end(JSON.stringify({ echo: body }))
    })
  })
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { api.close() })
  const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`

  const { client } = await signedIn(auth, clock, username, { apiOrigins: [apiUrl] })
  const response = await client.fetch(`${apiUrl}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item: 'tea' }) })
  t.equal(response.status, 200, 'the retry succeeded')
  t.same(await response.json(), { echo: '{"item":"tea"}' })
  t.equal(seen.length, 2, 'sent twice, no more')
  t.same(seen.map((request) => request.body), ['{"item":"tea"}', '{"item":"tea"}'], 'with the same body both times')
  t.not(seen[0]!.authorization, seen[1]!.authorization, 'the second time with the refreshed token')
  t.equal(await auth.refreshes('rotated'), 1, 'one refresh')

  await t.rejects(client.fetch('https://elsewhere.example/steal'), { code: 'origin_not_allowed' }, 'an origin not in apiOrigins never sees the token')
})

t.test('the auth-service itself refuses the token (its clock is past expiry): refresh once and retry', async (t) => {
  const { auth, clock, username } = await setup(t)
  const behind = testClock(clock.now())
  const { client } = await signedIn(auth, behind, username)
  clock.advance(TTL_MS + 10_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'a client whose clock is behind still gets through')
  t.equal(await auth.refreshes('rotated'), 1)
})

t.test('a lost refresh answer: retried inside the grace window, the same successor, the session lives on', async (t) => {
  const { auth, clock, username } = await setup(t)
  let dropped: string | undefined
  const { client, store, ended } = await signedIn(auth, clock, username, {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (dropped === undefined && String(init?.body ?? '').includes('grant_type=refresh_token')) {
        // The auth-service rotated the token and answered; the answer never arrives.
        dropped = (await response.json() as { refresh_token: string }).refresh_token
        throw new TypeError('fetch failed')
      }
      return response
    }
  })
  const spent = await store.get('refresh_token')

  clock.advance(TTL_MS)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'the call went through')
  t.type(dropped, 'string', 'a refresh answer was lost')
  t.equal(await store.get('refresh_token'), dropped, 'the retry with the same token got the successor of the lost answer')
  t.not(dropped, spent)
  t.equal(await auth.refreshes('rotated'), 1, 'one rotation')
  t.equal(await auth.refreshes('grace_retry'), 1, 'the retry was answered from the grace window')
  t.equal(await auth.metric('baton_auth_refresh_reuse_detected_total'), 0, 'not taken for theft')

  clock.advance(TTL_MS)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'and the successor refreshes in its turn')
  t.equal(await auth.refreshes('rotated'), 2)
  t.ok(client.signedIn)
  t.same(ended, [])
})

t.test('invalid_grant on refresh ends the session: session-ended, and no call goes out after', async (t) => {
  const { auth, clock, username } = await setup(t)
  const { client, store, ended } = await signedIn(auth, clock, username)
  const elsewhere = await signedIn(auth, clock, username)

  await elsewhere.client.logoutEverywhere()
  t.same(elsewhere.ended, [{ reason: 'logout_everywhere', fromOtherTab: false }], 'the client that logged out everywhere is signed out')

  // The auth-service refuses the revoked access token (401); the refresh that follows is refused (invalid_grant).
  await t.rejects(client.fetch(`${auth.url}/sessions`), { name: 'BatonClientError', code: 'invalid_grant' })
  t.match(ended, [{ reason: 'invalid_grant', description: String, fromOtherTab: false }], 'session-ended, once, with the reason')
  t.equal(ended.length, 1)
  t.notOk(client.signedIn)
  t.equal(client.expiresAt, undefined, 'the access token is forgotten')
  t.equal(await store.get('refresh_token'), undefined, 'and the refresh token')
  t.ok(await store.get('device_token'), 'the device token stays for the next login')
  await t.rejects(client.fetch(`${auth.url}/sessions`), { code: 'not_signed_in' })
  t.equal(ended.length, 1, 'ended once')

  await client.login(username, PASSWORD)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'a login starts over')
})

t.test('logout ends the session at the auth-service; logoutEverywhere ends every session', async (t) => {
  const { auth, clock, username } = await setup(t)
  const first = await signedIn(auth, clock, username)
  const refreshToken = (await first.store.get('refresh_token'))!
  await first.client.logout()
  t.same(first.ended, [{ reason: 'logout', fromOtherTab: false }])
  t.notOk(first.client.signedIn)
  t.match(await refreshDirectly(auth, refreshToken), { status: 400, body: { error: 'invalid_grant' } }, 'the refresh token no longer works')
  await t.resolves(first.client.logout(), 'a second logout is harmless')
  t.equal(first.ended.length, 1)

  const a = await signedIn(auth, clock, username)
  const b = await signedIn(auth, clock, username)
  const bToken = (await b.store.get('refresh_token'))!
  t.equal((await a.client.sessions()).length, 2)
  await a.client.logoutEverywhere()
  t.same(a.ended, [{ reason: 'logout_everywhere', fromOtherTab: false }])
  t.match(await refreshDirectly(auth, bToken), { status: 400, body: { error: 'invalid_grant' } }, 'the other device\'s session is over too')
  await t.rejects(b.client.sessions(), { code: 'invalid_grant' }, 'and that device learns it on its next call')
  t.same(b.ended.map((event) => event.reason), ['invalid_grant'])
})

t.test('a logout while a refresh is out: its late answer does not sign the client back in', async (t) => {
  const { auth, clock, username } = await setup(t)
  let refreshSent = false
  let answer = (): void => {}
  const answered = new Promise<void>((resolve) => { answer = resolve })
  const { client, ended } = await signedIn(auth, clock, username, {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (String(init?.body ?? '').includes('grant_type=refresh_token')) {
        refreshSent = true
        await answered
      }
      return response
    }
  })
  clock.advance(TTL_MS)
  const call = client.fetch(`${auth.url}/sessions`)
  while (!refreshSent) await new Promise((resolve) => setTimeout(resolve, 5))
  await client.logout()
  answer()
  await t.rejects(call, { code: 'not_signed_in' }, 'the call that waited for the refresh fails')
  t.notOk(client.signedIn, 'still signed out')
  t.same(ended.map((event) => event.reason), ['logout'])
  t.equal(await auth.metric('baton_auth_revocations_total', { kind: 'session', reason: 'revocation_endpoint' }), 1, 'the logout ended the session, though its refresh token had just been spent')
})

t.test('sessions: list them, end another one, end this one', async (t) => {
  const { auth, clock, username } = await setup(t)
  const laptop = await signedIn(auth, clock, username)
  const phone = await signedIn(auth, clock, username)

  const sessions = await laptop.client.sessions()
  t.equal(sessions.length, 2)
  const mine = sessions.find((session) => session.current)
  t.equal(mine?.id, laptop.client.sessionId, 'the current session is marked')
  t.match(mine, { createdAt: String, lastUsedAt: String, clientId: 'baton', userAgent: String, ip: '127.0.0.1' })
  const other = sessions.find((session) => !session.current)!
  t.equal(other.id, phone.client.sessionId)

  await laptop.client.endSession(other.id)
  t.same(laptop.ended, [], 'ending another session leaves this one')
  t.same((await laptop.client.sessions()).map((session) => session.id), [laptop.client.sessionId])
  await t.rejects(phone.client.fetch(`${auth.url}/sessions`), { code: 'invalid_grant' }, 'the ended session is over on its device')
  t.same(phone.ended.map((event) => event.reason), ['invalid_grant'])

  await t.rejects(laptop.client.endSession('AAAAAAAAAAAAAAAAAAAAAA'), { name: 'BatonClientError', status: 404 }, 'an unknown session: 404')
  await laptop.client.endSession(laptop.client.sessionId!)
  t.same(laptop.ended, [{ reason: 'session_ended', fromOtherTab: false }], 'ending this session signs this client out')
  t.notOk(laptop.client.signedIn)
})

t.test('an auth-service that cannot be reached: the call fails, the session stays', async (t) => {
  const { auth, clock, username } = await setup(t)
  let offline = false
  const { client, ended } = await signedIn(auth, clock, username, {
    refreshRetryWindowMs: 500,
    fetch: async (input, init) => {
      if (offline) throw new TypeError('fetch failed')
      return await fetch(input, init)
    }
  })
  const token = await client.accessToken()
  clock.advance(TTL_MS - 10_000)
  offline = true
  t.equal(await client.accessToken(), token, 'refreshing early failed, but the token is still good: it is handed out')
  clock.advance(20_000)
  await t.rejects(client.accessToken(), { code: 'network_error' }, 'an expired one cannot be')
  t.ok(client.signedIn, 'still signed in')
  t.same(ended, [])
  offline = false
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'and back online the next call refreshes')
})

t.test('options that do not fit together are refused at once', async (t) => {
  t.throws(() => createClient({ issuer: 'not a url' }), { code: 'invalid_options' })
  t.throws(() => createClient({ issuer: 'ftp://auth.example.com' }), { code: 'invalid_options' })
  t.throws(() => createClient({ issuer: 'https://auth.example.com', refreshTokenDelivery: 'cookie', tokenStore: new MemoryTokenStore() }), { code: 'invalid_options', message: /tokenStore/ })
  t.throws(() => createClient({ issuer: 'https://auth.example.com', refreshTokenDelivery: 'cookie', clientSecret: 's3cret-s3cret-s3cret' }), { code: 'invalid_options' })
  t.throws(() => createClient({ issuer: 'https://auth.example.com', refreshSkewMs: -1 }), { code: 'invalid_options', message: /refreshSkewMs/ })
  t.type(new BatonClientError('x', 'y'), Error)
})
