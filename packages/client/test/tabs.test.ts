// Tabs of one app, played by clients with `crossTab` in one Node process:
// Node 24 has the Web Locks API and BroadcastChannel, as browsers do. The
// real-browser version of the main case is browser.test.ts.
import t, { type Test } from 'tap'
import { createClient, type BatonClient, type ClientEvents } from '../src/index.js'
import { PASSWORD, startAuthService, testClock, type AuthService, type TestClock } from './helper.js'

const TTL_MS = 900_000

const hasLocks = typeof (globalThis as { navigator?: { locks?: unknown } }).navigator?.locks === 'object'
if (!hasLocks) t.comment(`no Web Locks API in Node ${process.version} (it came in Node 24): tabs.test.ts is skipped`)

interface Tab {
  client: BatonClient
  events: Array<{ type: keyof ClientEvents } & Record<string, unknown>>
  tokenRequests: () => number
}

let channels = 0

function tabs (t: Test, auth: AuthService, clock: TestClock): () => Tab {
  const channelName = `tabs-${process.pid}-${++channels}`
  return () => {
    let tokenRequests = 0
    const client = createClient({
      issuer: auth.url,
      crossTab: true,
      channelName,
      now: clock.now,
      fetch: async (input, init) => {
        if (String(input).endsWith('/oauth/token')) tokenRequests++
        return await fetch(input, init)
      }
    })
    t.teardown(() => { client.close() })
    const events: Tab['events'] = []
    for (const type of ['signed-in', 'refreshed', 'session-ended'] as const) client.on(type, (event) => { events.push({ type, ...event }) })
    return { client, events, tokenRequests: () => tokenRequests }
  }
}

async function until (check: () => boolean, what: string, timeoutMs = 2000): Promise<number> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return Date.now() - started
}

/** An auth-service, a user, and two tabs signed in by a login in the first. */
async function twoTabs (t: Test): Promise<{ auth: AuthService, clock: TestClock, username: string, open: () => Tab, a: Tab, b: Tab }> {
  const clock = testClock()
  const auth = await startAuthService(t, {}, { clock })
  const username = await auth.register()
  const open = tabs(t, auth, clock)
  const a = open()
  const b = open()
  await a.client.login(username, PASSWORD)
  await until(() => b.client.signedIn, 'the login reaches the other tab')
  return { auth, clock, username, open, a, b }
}

t.test('tabs share one session: one login, one refresh for all, one logout for all', { skip: !hasLocks }, async (t) => {
  const { auth, clock, open, a, b } = await twoTabs(t)
  t.match(b.events, [{ type: 'signed-in', fromOtherTab: true }])
  t.equal(b.client.sessionId, a.client.sessionId, 'one session')
  t.equal((await b.client.fetch(`${auth.url}/sessions`)).status, 200, 'the other tab calls with the handed-over token')
  t.equal(b.tokenRequests(), 0, 'without a token request of its own')

  const c = open()
  t.equal(await c.client.restore(), true, 'a tab opened later finds the session through the others')
  t.equal(c.tokenRequests(), 0, 'without refreshing')

  clock.advance(TTL_MS)
  const answers = await Promise.all([a, b, c].flatMap((tab) => Array.from({ length: 20 }, async () => (await tab.client.fetch(`${auth.url}/sessions`)).status)))
  t.same(answers, Array(60).fill(200), '60 calls from 3 tabs as the token expired: all 200')
  t.equal(await auth.refreshes('rotated'), 1, 'one rotation')
  t.equal(await auth.refreshes('grace_retry'), 0, 'no tab retried a spent token')
  t.equal(a.tokenRequests() + b.tokenRequests() + c.tokenRequests(), 2, 'the login and the one refresh were the only token requests')
  t.equal(new Set([a, b, c].map((tab) => tab.client.expiresAt)).size, 1, 'every tab holds the new token')

  await b.client.logout()
  const took = await until(() => !a.client.signedIn && !c.client.signedIn, 'the logout reaches the other tabs', 1000)
  t.comment(`logout in one tab → the others signed out in ${took} ms`)
  for (const tab of [a, c]) t.match(tab.events.at(-1), { type: 'session-ended', reason: 'logout', fromOtherTab: true })
  t.match(b.events.at(-1), { type: 'session-ended', reason: 'logout', fromOtherTab: false })
  await t.rejects(a.client.fetch(`${auth.url}/sessions`), { code: 'not_signed_in' })
})

t.test('invalid_grant in one tab ends the session in every tab', { skip: !hasLocks }, async (t) => {
  const { auth, clock, username, a, b } = await twoTabs(t)

  // Another device ends every session of the user.
  const phone = createClient({ issuer: auth.url, now: clock.now })
  await phone.login(username, PASSWORD)
  await phone.logoutEverywhere()

  await t.rejects(b.client.fetch(`${auth.url}/sessions`), { code: 'invalid_grant' })
  await until(() => !a.client.signedIn, 'the end reaches the other tab')
  t.match(a.events.at(-1), { type: 'session-ended', reason: 'invalid_grant', fromOtherTab: true })
  t.match(b.events.at(-1), { type: 'session-ended', reason: 'invalid_grant', fromOtherTab: false })
  t.equal(a.events.filter((event) => event.type === 'session-ended').length, 1, 'once')
})

t.test('a signed-out tab is not signed back in by a late refresh of the old session', { skip: !hasLocks }, async (t) => {
  const { clock, username, a, b } = await twoTabs(t)
  await b.client.logout()
  await until(() => !a.client.signedIn, 'the logout reaches the other tab')

  // A message as a tab that missed the logout would post it after refreshing.
  const late = new BroadcastChannel(`tabs-${process.pid}-${channels}`)
  late.postMessage({ v: 1, type: 'tokens', reason: 'refresh', accessToken: 'x.y.z', expiresAt: clock.now() + TTL_MS, lifetimeMs: TTL_MS, refreshToken: 'late' })
  late.close()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.notOk(a.client.signedIn, 'still signed out')
  t.notOk(b.client.signedIn)

  await b.client.login(username, PASSWORD)
  await until(() => a.client.signedIn, 'a new login signs every tab in')
})
