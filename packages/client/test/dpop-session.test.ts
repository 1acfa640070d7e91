// A whole session with DPoP-bound tokens, in Node: the client against the
// real auth-service and resource-service on real sockets. Login, API calls,
// refresh across the access token's expiry, server nonces, a lost refresh
// answer, logout; and what a copy of the tokens is worth without the key.
// Time is a clock the test moves, shared by both services and the client.
import t, { type Test } from 'tap'
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '@baton/resource-service'
import { createClient, generateDpopKeyPair, MemoryKeyStore, MemoryTokenStore, type BatonClient, type ClientOptions } from '../src/index.js'
import { DpopSigner } from '../src/dpop.js'
import { PASSWORD, startAuthService, testClock, type AuthService, type TestClock } from './helper.js'

const TTL_MS = 900_000

interface Setup {
  auth: AuthService
  api: string
  clock: TestClock
  username: string
}

async function setup (t: Test, env: Record<string, string> = {}): Promise<Setup> {
  const clock = testClock()
  const auth = await startAuthService(t, { DEFAULT_SCOPES: 'profile reports:read', ...env }, { clock })
  const resource = await buildResource(loadResourceConfig({ ISSUER: auth.url, LOG_LEVEL: 'silent' }), { now: clock.now })
  t.teardown(async () => { await resource.close() })
  const api = await resource.listen({ host: '127.0.0.1', port: 0 })
  for (let i = 0; i < 100 && (await fetch(`${api}/readyz`)).status !== 200; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  return { auth, api, clock, username: await auth.register() }
}

/** A client with `dpop: true` for the services of `setup`, on its clock. */
function dpopClient ({ auth, api, clock }: Setup, options: Partial<ClientOptions> = {}): BatonClient {
  return createClient({ issuer: auth.url, apiOrigins: [api], dpop: true, now: clock.now, ...options })
}

/** The access token's claims, verified with the auth-service's published keys. */
async function claimsOf (auth: AuthService, token: string, clock: TestClock): Promise<JWTPayload & { cnf?: { jkt?: string } }> {
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${auth.url}/.well-known/jwks.json`)), { issuer: auth.url, typ: 'at+jwt', currentDate: new Date(clock.now()) })
  return payload
}

/** A refresh grant sent by someone holding a copy of the refresh token, with a proof of another key or none. */
async function refreshAsThief (auth: AuthService, refreshToken: string, clock: TestClock, withOwnKey: boolean): Promise<{ status: number, body: Record<string, unknown> }> {
  const proof = withOwnKey
    ? { dpop: await new DpopSigner(await generateDpopKeyPair()).proof({ method: 'POST', url: `${auth.url}/oauth/token`, issuedAt: Math.floor(clock.now() / 1000) }) }
    : {}
  const response = await fetch(`${auth.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...proof },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'baton' })
  })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

async function apiStatus (client: BatonClient, url: string): Promise<number> {
  const response = await client.fetch(url)
  await response.body?.cancel()
  return response.status
}

t.test('a whole session with DPoP-bound tokens: login, API calls, refresh across expiry, logout', async (t) => {
  const context = await setup(t)
  const { auth, api, clock, username } = context
  const store = new MemoryTokenStore()
  const client = dpopClient(context, { tokenStore: store })
  await client.login(username, PASSWORD)
  const key = await client.dpopKey()
  t.equal(client.tokenType, 'DPoP', 'the auth-service issued a DPoP token')
  const first = await claimsOf(auth, await client.accessToken(), clock)
  t.equal(first.cnf?.jkt, key?.thumbprint, 'bound to the client\'s key: cnf.jkt is its thumbprint')

  t.equal(await apiStatus(client, `${api}/me`), 200, 'the resource-service takes the token with its proof')
  t.equal(await apiStatus(client, `${api}/reports`), 200)
  t.equal(await apiStatus(client, `${auth.url}/sessions`), 200, 'and so do the auth-service\'s own endpoints')

  const token = await client.accessToken()
  const asBearer = await fetch(`${api}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(asBearer.status, 401, 'a copy of the access token sent as Bearer is refused')
  const otherKey = new DpopSigner(await generateDpopKeyPair())
  const withOtherKey = await fetch(`${api}/me`, {
    headers: { authorization: `DPoP ${token}`, dpop: await otherKey.proof({ method: 'GET', url: `${api}/me`, accessToken: token, issuedAt: Math.floor(clock.now() / 1000) }) }
  })
  t.equal(withOtherKey.status, 401, 'and with a proof of another key')

  clock.advance(TTL_MS - 1000)
  t.equal(await apiStatus(client, `${api}/me`), 200, 'a call as the token expires: refreshed first, then sent')
  t.equal(await auth.refreshes('rotated'), 1, 'one rotation')
  const second = await claimsOf(auth, await client.accessToken(), clock)
  t.not(second.jti, first.jti, 'a new access token')
  t.equal(second.cnf?.jkt, key?.thumbprint, 'bound to the same key')
  t.equal(client.tokenType, 'DPoP')

  clock.advance(TTL_MS + 1000)
  t.equal(await apiStatus(client, `${api}/me`), 200, 'and after the access token has expired outright')
  t.equal(await auth.refreshes('rotated'), 2)

  await client.logout()
  t.notOk(client.signedIn, 'logged out')
  await t.rejects(client.fetch(`${api}/me`), { code: 'not_signed_in' })
  t.equal((await fetch(`${auth.url}/sessions`, { headers: { authorization: `DPoP ${token}` } })).status, 401, 'the session is over at the auth-service')
})

t.test('a copy of a bound refresh token is worth nothing: without the key, or with another, it is refused and the session revoked', async (t) => {
  for (const withOwnKey of [false, true]) {
    const context = await setup(t)
    const { auth, api, clock, username } = context
    const store = new MemoryTokenStore()
    const client = dpopClient(context, { tokenStore: store })
    const ended: string[] = []
    client.on('session-ended', ({ reason }) => { ended.push(reason) })
    await client.login(username, PASSWORD)
    const stolen = (await store.get('refresh_token'))!
    const thief = await refreshAsThief(auth, stolen, clock, withOwnKey)
    t.equal(thief.status, 400, `the thief's refresh ${withOwnKey ? 'with a proof of its own key' : 'without a proof'} is refused`)
    t.notOk('access_token' in thief.body, 'and gets no token')

    clock.advance(TTL_MS)
    await t.rejects(client.fetch(`${api}/me`), { code: 'invalid_grant' }, 'the owner\'s next refresh finds the session revoked: the theft was noticed')
    t.same(ended, ['invalid_grant'])
  }
})

t.test('server nonces: the client answers use_dpop_nonce at the token endpoint, and keeps going', async (t) => {
  // A nonce lives one to two periods: an hour, so one access token's lifetime later the remembered one is still good.
  const context = await setup(t, { DPOP_NONCE: 'required', DPOP_NONCE_LIFETIME: '1h' })
  const { auth, api, clock, username } = context
  const sent: Array<{ url: string, status: number, nonce: string | undefined }> = []
  const client = dpopClient(context, {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      const proof = new Headers(init?.headers).get('dpop') ?? (input instanceof Request ? input.headers.get('dpop') : null)
      const payload = proof === null ? {} : JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as { nonce?: string }
      sent.push({ url: String(input instanceof Request ? input.url : input), status: response.status, nonce: payload.nonce })
      return response
    }
  })
  await client.login(username, PASSWORD)
  const logins = sent.filter((entry) => entry.url.endsWith('/oauth/token'))
  t.match(logins, [{ status: 400, nonce: undefined }, { status: 200, nonce: String }], 'the first login proof had no nonce: 400 use_dpop_nonce, then again with it')
  t.equal(client.tokenType, 'DPoP')

  clock.advance(TTL_MS)
  await client.accessToken()
  const refreshes = sent.filter((entry) => entry.url.endsWith('/oauth/token')).slice(2)
  t.match(refreshes, [{ status: 200, nonce: String }], 'the refresh carried the remembered nonce at once: no second challenge')
  t.equal(await auth.refreshes('rotated'), 1)
  t.equal(await apiStatus(client, `${api}/me`), 200, 'and the API takes the refreshed token')

  clock.advance(3 * 3600_000)
  await client.accessToken()
  t.match(sent.filter((entry) => entry.url.endsWith('/oauth/token')).slice(3), [{ status: 400, nonce: String }, { status: 200, nonce: String }], 'hours later the remembered nonce is stale: one more challenge, answered')
  t.equal(await auth.refreshes('rotated'), 2)
})

t.test('a protected route that wants a fresh nonce: its 401 use_dpop_nonce is answered once, with the nonce it gave', async (t) => {
  // The auth-service's own routes share its nonces; ten seconds a period, so 25 s later the remembered nonce is stale.
  const context = await setup(t, { DPOP_NONCE: 'required', DPOP_NONCE_LIFETIME: '10s' })
  const { auth, clock, username } = context
  const sent: Array<{ status: number, nonce: string | undefined, challenge: string | null }> = []
  const client = dpopClient(context, {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (String(input instanceof Request ? input.url : input).endsWith('/sessions')) {
        const proof = new Headers(init?.headers).get('dpop')!
        sent.push({ status: response.status, nonce: (JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as { nonce?: string }).nonce, challenge: response.headers.get('www-authenticate') })
      }
      return response
    }
  })
  await client.login(username, PASSWORD)
  t.equal(await apiStatus(client, `${auth.url}/sessions`), 200, 'at once: the token endpoint\'s nonce is good there')
  t.equal(sent.length, 1, 'no challenge')

  clock.advance(25_000)
  t.equal(await apiStatus(client, `${auth.url}/sessions`), 200, '25 s later, answered')
  t.match(sent.slice(1), [{ status: 401, challenge: /^DPoP .*error="use_dpop_nonce"/ }, { status: 200, nonce: String }], 'after one challenge')
  t.not(sent[2]?.nonce, sent[1]?.nonce, 'the retry carried the new nonce')
  t.equal(await auth.refreshes('rotated'), 0, 'a nonce challenge is no reason to refresh')
})

t.test('two tabs (crossTab clients in one process) sharing one key store: the hand-over and one refresh serve both', async (t) => {
  const context = await setup(t)
  const { auth, api, clock, username } = context
  const keyStore = new MemoryKeyStore()
  const tab = (): BatonClient => dpopClient(context, { crossTab: true, channelName: `dpop-tabs-${process.pid}`, dpop: { keyStore }, tokenStore: new MemoryTokenStore() })
  const [first, second] = [tab(), tab()]
  t.teardown(() => { first.close(); second.close() })
  await first.login(username, PASSWORD)
  t.ok(await second.restore(), 'the second tab is handed the session')
  t.equal(second.tokenType, 'DPoP', 'as a DPoP token')
  t.equal(await apiStatus(second, `${api}/me`), 200, 'which its proofs, of the shared key, make good')

  clock.advance(TTL_MS)
  const statuses = await Promise.all([first, second].flatMap((client) => [apiStatus(client, `${api}/me`), apiStatus(client, `${auth.url}/sessions`)]))
  t.same(statuses, [200, 200, 200, 200], 'both tabs call on, past the expiry')
  t.equal(await auth.refreshes('rotated'), 1, 'after one refresh between them')
})

t.test('a lost refresh answer: the retry carries a fresh proof of the same key, inside the grace window', async (t) => {
  const context = await setup(t)
  const { auth, api, clock, username } = context
  const proofs: string[] = []
  let dropped = false
  const client = dpopClient(context, {
    fetch: async (input, init) => {
      const refresh = String(init?.body ?? '').includes('grant_type=refresh_token')
      if (refresh) proofs.push(new Headers(init?.headers).get('dpop') ?? '')
      const response = await fetch(input, init)
      if (refresh && !dropped) {
        // The auth-service rotated the token and answered; the answer never arrives.
        dropped = true
        await response.body?.cancel()
        throw new TypeError('fetch failed')
      }
      return response
    }
  })
  await client.login(username, PASSWORD)
  clock.advance(TTL_MS)
  await client.accessToken()
  t.equal(proofs.length, 2, 'the refresh was sent twice')
  t.not(proofs[0], proofs[1], 'each time with a proof of its own: the auth-service takes a proof once')
  t.equal(await auth.refreshes('grace_retry'), 1, 'the retry was answered from the grace window')
  t.equal(await auth.refreshes('reuse_detected'), 0, 'not taken for theft')
  t.ok(client.signedIn)
  t.equal(await apiStatus(client, `${api}/me`), 200, 'and the new token works')
})
