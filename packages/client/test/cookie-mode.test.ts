// Cookie mode end to end in Node: the client against a real auth-service
// whose client is registered for cookie delivery. Node keeps no cookies, so
// `pageFetch` plays the browser a page runs in: it sends the page's Origin,
// keeps the cookies the auth-service sets (refusing a __Host- cookie without
// Secure, Path=/ or with a Domain, as browsers do) and sends them back only
// with `credentials: 'include'`, and lets the page read an answer only when
// CORS allows it. Real Chromium runs this flow in the browser tests.
import t, { type Test } from 'tap'
import { createClient, type BatonClient, type ClientEvents } from '../src/index.js'
import { PASSWORD, startAuthService, testClock, type AuthService, type TestClock } from './helper.js'

const PAGE = 'http://127.0.0.1:5173'
const COOKIE = '__Host-baton-refresh-baton'
const TTL_MS = 900_000

/** A browser's cookie jar for one site, and the fetch a page at `origin` gets. */
function browser (clock: TestClock, origin: string) {
  const jar = new Map<string, { value: string, expiresAt: number }>()
  const keep = (line: string): void => {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
    const [name = '', value = ''] = pair.split(/=(.*)/s)
    const attribute = new Map(attributes.map((entry) => [entry.split('=')[0]!.toLowerCase(), entry.split('=')[1] ?? '']))
    if (name.startsWith('__Host-') && (!attribute.has('secure') || attribute.get('path') !== '/' || attribute.has('domain'))) return
    const maxAge = Number(attribute.get('max-age') ?? Infinity)
    if (maxAge <= 0) jar.delete(name)
    else jar.set(name, { value, expiresAt: clock.now() + maxAge * 1000 })
  }
  const cookieHeader = (): string => [...jar].filter(([, cookie]) => cookie.expiresAt > clock.now()).map(([name, cookie]) => `${name}=${cookie.value}`).join('; ')

  const pageFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init)
    const headers = new Headers(request.headers)
    headers.set('origin', origin)
    const include = request.credentials === 'include'
    if (include && cookieHeader() !== '') headers.set('cookie', cookieHeader())
    const response = await fetch(request.url, {
      method: request.method,
      headers,
      signal: request.signal,
      ...(request.method === 'GET' || request.method === 'HEAD' ? {} : { body: await request.arrayBuffer() })
    })
    if (response.headers.get('access-control-allow-origin') !== origin || (include && response.headers.get('access-control-allow-credentials') !== 'true')) {
      throw new TypeError('Failed to fetch: CORS refused the answer to this page')
    }
    if (include) for (const line of response.headers.getSetCookie()) keep(line)
    return response
  }
  return { pageFetch, cookie: (): string | undefined => jar.get(COOKIE)?.value, jar }
}

interface Page {
  auth: AuthService
  clock: TestClock
  username: string
  page: ReturnType<typeof browser>
  open: () => { client: BatonClient, ended: Array<ClientEvents['session-ended']> }
}

async function setup (t: Test, origin = PAGE): Promise<Page> {
  const clock = testClock()
  const auth = await startAuthService(t, {
    CORS_ORIGINS: PAGE,
    CLIENTS: JSON.stringify([{ client_id: 'baton', grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie' }])
  }, { clock })
  const page = browser(clock, origin)
  // One client per page load; they share the browser's cookies, not memory.
  const open = (): ReturnType<Page['open']> => {
    const client = createClient({ issuer: auth.url, refreshTokenDelivery: 'cookie', fetch: page.pageFetch, now: clock.now, crossTab: false })
    const ended: Array<ClientEvents['session-ended']> = []
    client.on('session-ended', (event) => { ended.push(event) })
    t.teardown(() => { client.close() })
    return { client, ended }
  }
  return { auth, clock, page, open, username: await auth.register() }
}

t.test('cookie mode: login, refresh before expiry, a new page load restores, logout clears the cookie', async (t) => {
  const { auth, clock, page, open, username } = await setup(t)
  const { client, ended } = open()
  await client.login(username, PASSWORD)
  t.ok(client.signedIn)
  const first = page.cookie()
  t.ok(first, 'the browser holds the refresh cookie')

  clock.advance(TTL_MS - 10_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200)
  t.equal(await auth.refreshes('rotated'), 1, 'refreshed with the cookie, no refresh token in hand')
  t.not(page.cookie(), first, 'and the browser holds the rotated one')

  const reloaded = open()
  t.equal(await reloaded.client.restore(), true, 'a new page load picks up the session from the cookie')
  t.equal((await reloaded.client.fetch(`${auth.url}/sessions`)).status, 200)

  await reloaded.client.logout()
  t.equal(page.cookie(), undefined, 'logout cleared the cookie')
  t.equal(await open().client.restore(), false, 'after which no page finds a session')
  t.equal(await auth.refreshes('reuse_detected'), 0)
  t.same(ended, [], 'the first page was not told by the auth-service (no cross-tab channel here)')
})

t.test('cookie mode: a stolen cookie replayed ends the session; the page sees invalid_grant', async (t) => {
  const { auth, clock, page, open, username } = await setup(t)
  const { client, ended } = open()
  await client.login(username, PASSWORD)
  const stolen = page.cookie()!
  clock.advance(TTL_MS - 10_000)
  t.equal((await client.fetch(`${auth.url}/sessions`)).status, 200, 'the owner refreshes')
  clock.advance(60_000)

  const thief = await fetch(`${auth.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: PAGE, 'x-baton-client': '1', cookie: `${COOKIE}=${stolen}` },
    body: new URLSearchParams({ grant_type: 'refresh_token' })
  })
  t.equal(thief.status, 400, 'the replay is refused')
  t.equal(await auth.refreshes('reuse_detected'), 1, 'as reuse: the family is revoked')

  clock.advance(TTL_MS)
  await t.rejects(client.fetch(`${auth.url}/sessions`), { code: 'invalid_grant' }, 'the owner\'s next refresh finds the session over')
  t.match(ended, [{ reason: 'invalid_grant', fromOtherTab: false }])
  t.equal(page.cookie(), undefined, 'and the dead cookie is cleared')
})

t.test('cookie mode from a page of an origin not allowed: the login never reaches the page', async (t) => {
  const { open, username, page } = await setup(t, 'http://127.0.0.1:6666')
  await t.rejects(open().client.login(username, PASSWORD), { code: 'network_error' }, 'no CORS for that origin: the browser hides the answer')
  t.equal(page.cookie(), undefined, 'and the auth-service set no cookie (403 before anything happened)')
})
