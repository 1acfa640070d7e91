// Tabs of one real Chromium, the SDK loaded from dist/ as ES modules,
// against a real auth-service (token mode): as the access token is about to
// expire two tabs fire 20 requests each, and the auth-service's metrics must
// count one rotation with both tabs still signed in; a logout in one tab
// signs the other out within a second; a refresh whose answer the browser
// never receives leaves the session alive.
import t from 'tap'
import type { Test } from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import type { BatonClient } from '../src/index.js'
import { harnessRoutes, launchBrowser, openTab, skipWithoutChromium } from './browser-harness.js'
import { PASSWORD, startAuthService } from './helper.js'

// What the harness page puts on window.
interface Harness {
  baton: BatonClient
  batonEvents: Array<{ type: string, at: number, fromOtherTab?: boolean, reason?: string }>
}

const ACCESS_TOKEN_TTL_S = 10 // the floor the auth-service allows
const SKEW_MS = 3_000
const PER_TAB = 20

// Four browsers, each waiting for tokens to come due: minutes on a loaded machine, more than tap's default.
t.setTimeout(300_000)
const skip = skipWithoutChromium(t)

/** In the tab: wait until the token is due for refresh, then fire `count` requests at once; their statuses. */
async function fireWhenDue (page: Page, count: number): Promise<number[]> {
  return await page.evaluate(async ({ count, skew }) => {
    const { baton } = globalThis as unknown as Harness
    const due = baton.expiresAt! - skew
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())))
    return await Promise.all(Array.from({ length: count }, async () => (await baton.fetch('/sessions')).status))
  }, { count, skew: SKEW_MS })
}

async function harnessState (page: Page): Promise<{ signedIn: boolean, expiresAt: number | undefined, sessionId: string | undefined, events: Harness['batonEvents'] }> {
  return await page.evaluate(() => {
    const { baton, batonEvents } = globalThis as unknown as Harness
    return { signedIn: baton.signedIn, expiresAt: baton.expiresAt, sessionId: baton.sessionId, events: batonEvents }
  })
}

/** Two tabs on the harness page, signed in by one login in the first: the second follows through the BroadcastChannel. */
async function twoSignedInTabs (t: Test, context: BrowserContext, baseUrl: string, username: string): Promise<[Page, Page]> {
  const first = await openTab(t, context, baseUrl, { skew: String(SKEW_MS) })
  const second = await openTab(t, context, baseUrl, { skew: String(SKEW_MS) })
  t.same(await first.evaluate(() => typeof (globalThis as unknown as { navigator: { locks?: unknown } }).navigator.locks), 'object', 'the page has the Web Locks API')
  await first.evaluate(async ({ username, password }) => { await (globalThis as unknown as Harness).baton.login(username, password) }, { username, password: PASSWORD })
  await second.waitForFunction(() => (globalThis as unknown as Harness).baton.signedIn, undefined, { timeout: 2000 })
  const [one, two] = [await harnessState(first), await harnessState(second)]
  t.match(two.events, [{ type: 'signed-in', fromOtherTab: true }], 'the second tab was signed in by the first tab\'s login')
  t.equal(two.sessionId, one.sessionId, 'one session')
  return [first, second]
}

t.test('two tabs, 20 requests each as the access token expires: one rotation, both stay signed in', { skip }, async (t) => {
  const auth = await startAuthService(t, { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S) }, { routes: harnessRoutes })
  const username = await auth.register()
  const context = await launchBrowser(t)
  const tokenRequests: string[] = []
  context.on('request', (request) => { if (request.url().endsWith('/oauth/token')) tokenRequests.push(request.postData() ?? '') })

  const [first, second] = await twoSignedInTabs(t, context, auth.url, username)
  const before = await harnessState(second)
  t.equal(await auth.refreshes('rotated'), 0)

  const [fromFirst, fromSecond] = await Promise.all([fireWhenDue(first, PER_TAB), fireWhenDue(second, PER_TAB)])
  const statuses = [...fromFirst!, ...fromSecond!]
  const rotations = await auth.refreshes('rotated')
  const retries = await auth.refreshes('grace_retry')
  const states = [await harnessState(first), await harnessState(second)]
  const signOuts = states.flatMap((state) => state.events.filter((event) => event.type === 'session-ended')).length
  t.comment(`two tabs: ${statuses.length} requests sent (${statuses.filter((status) => status === 200).length} answered 200), ${rotations} rotation counted by baton_auth_refreshes_total, ${retries} grace retries, ${signOuts} sign-outs`)

  t.same(statuses, Array(2 * PER_TAB).fill(200), `all ${2 * PER_TAB} requests answered 200`)
  t.equal(rotations, 1, 'the auth-service counted exactly one rotation')
  t.equal(retries, 0, 'and no retry of a spent refresh token')
  t.equal(tokenRequests.filter((body) => body.includes('grant_type=refresh_token')).length, 1, 'one refresh request left the browser')
  t.equal(signOuts, 0, 'nobody was signed out')
  for (const [index, state] of states.entries()) {
    t.ok(state.signedIn, `tab ${index + 1} is signed in`)
    t.ok(state.expiresAt! > before.expiresAt!, `tab ${index + 1} holds the new access token`)
  }
  t.equal(states[0]!.expiresAt, states[1]!.expiresAt, 'the same one')
  t.match(states.map((state) => state.events.filter((event) => event.type === 'refreshed')), [[{ fromOtherTab: Boolean }], [{ fromOtherTab: Boolean }]], 'each tab saw one refresh')
  t.equal(states.flatMap((state) => state.events.filter((event) => event.type === 'refreshed' && event.fromOtherTab === false)).length, 1, 'made by one tab, handed to the other')

  for (const page of [first, second]) {
    t.equal(await page.evaluate(async () => (await (globalThis as unknown as Harness).baton.fetch('/sessions')).status), 200, 'and each tab goes on calling')
  }
})

t.test('logout in one tab signs the other out within a second, and the auth-service ends the session', { skip }, async (t) => {
  const auth = await startAuthService(t, {}, { routes: harnessRoutes })
  const username = await auth.register()
  const context = await launchBrowser(t)
  const [first, second] = await twoSignedInTabs(t, context, auth.url, username)
  const stolenView = await second.evaluate(async () => await (globalThis as unknown as Harness).baton.accessToken())

  const loggedOutAt = await first.evaluate(async () => {
    await (globalThis as unknown as Harness).baton.logout()
    return Date.now()
  })
  await second.waitForFunction(() => !(globalThis as unknown as Harness).baton.signedIn, undefined, { timeout: 1000 })
  const { events, signedIn } = await harnessState(second)
  const ended = events.find((event) => event.type === 'session-ended')
  t.notOk(signedIn, 'the second tab is signed out')
  t.match(ended, { reason: 'logout', fromOtherTab: true }, 'and told why: a logout in another tab')
  t.ok(ended !== undefined && ended.at - loggedOutAt < 1000, `within a second of the first tab's logout (${ended === undefined ? '?' : ended.at - loggedOutAt} ms)`)
  t.comment(`logout: the second tab was signed out ${ended === undefined ? '?' : ended.at - loggedOutAt} ms after the first tab's logout returned`)

  t.match(await second.evaluate(async () => await (globalThis as unknown as Harness).baton.fetch('/sessions').then(() => 'sent', (error: { code?: string }) => error.code)), 'not_signed_in', 'the second tab sends no token any more')
  const status = await second.evaluate(async (token) => (await fetch('/sessions', { headers: { authorization: `Bearer ${token}` } })).status, stolenView)
  t.equal(status, 401, 'and the access token it held is refused by the auth-service: the session is over there too')
})

const COOKIE_CLIENT = 'harness-cookie'

/** The auth-service for one delivery mode; in cookie mode with a cookie client that the harness page, on the service's own origin, may use. */
function modeEnvironment (delivery: 'body' | 'cookie'): (url: string) => Record<string, string> {
  return (url) => ({
    ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S),
    ...(delivery === 'cookie'
      ? { CORS_ORIGINS: url, CLIENTS: JSON.stringify([{ client_id: COOKIE_CLIENT, grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie' }]) }
      : {})
  })
}

/** The new refresh token an answer carries: in its body (token mode) or its Set-Cookie (cookie mode). */
function refreshTokenOf (body: { refresh_token?: string }, setCookie: string | undefined): string | undefined {
  return body.refresh_token ?? /__Host-baton-refresh-[^=]+=([^;]*)/.exec(setCookie ?? '')?.[1]
}

for (const delivery of ['body', 'cookie'] as const) {
  t.test(`${delivery === 'body' ? 'token' : 'cookie'} mode: a refresh answer lost on the way back (the server rotated, the browser never heard) leaves the session alive`, { skip }, async (t) => {
    const auth = await startAuthService(t, modeEnvironment(delivery), { routes: harnessRoutes })
    const username = await auth.register()
    const context = await launchBrowser(t)
    const page = await openTab(t, context, auth.url, { skew: String(SKEW_MS), ...(delivery === 'cookie' ? { delivery, client: COOKIE_CLIENT } : {}) })
    await page.evaluate(async ({ username, password }) => { await (globalThis as unknown as Harness).baton.login(username, password) }, { username, password: PASSWORD })

    // The first refresh goes to the auth-service for real, and its answer is thrown away: the browser sees a reset connection.
    const refreshAnswers: Array<{ lost: boolean, status: number, refreshToken: string | undefined }> = []
    await context.route('**/oauth/token', async (route) => {
      if (!(route.request().postData() ?? '').includes('grant_type=refresh_token')) return await route.continue()
      const lost = refreshAnswers.length === 0
      // route.fetch() stores the answer's cookies in the browser's jar: put the jar back, as if the Set-Cookie never came.
      const jar = await context.cookies()
      const response = await route.fetch()
      const body = await response.json() as { refresh_token?: string }
      refreshAnswers.push({ lost, status: response.status(), refreshToken: refreshTokenOf(body, response.headers()['set-cookie']) })
      if (!lost) return await route.fulfill({ response, json: body })
      await context.clearCookies()
      await context.addCookies(jar)
      return await route.abort('connectionreset')
    })
    const before = (await harnessState(page)).expiresAt!

    const [status] = await fireWhenDue(page, 1)
    const state = await harnessState(page)
    t.equal(status, 200, 'the call that needed the refresh was answered')
    t.equal(refreshAnswers.length, 2, 'the refresh was sent twice: once lost, once retried')
    t.match(refreshAnswers[0], { lost: true, status: 200, refreshToken: String }, 'the first reached the auth-service, which rotated')
    t.match(refreshAnswers[1], { lost: false, status: 200 }, 'the retry was answered')
    t.equal(refreshAnswers[1]?.refreshToken, refreshAnswers[0]?.refreshToken, 'with the very successor the lost answer carried')
    t.equal(await auth.refreshes('rotated'), 1, 'one rotation')
    t.equal(await auth.refreshes('grace_retry'), 1, 'and the retry answered inside the grace window')
    t.equal(await auth.refreshes('reuse_detected'), 0, 'not taken for theft')
    t.ok(state.signedIn, 'still signed in')
    t.ok(state.expiresAt! > before, 'with the new access token')
    if (delivery === 'cookie') {
      const cookie = (await context.cookies(auth.url)).find((entry) => entry.name === `__Host-baton-refresh-${COOKIE_CLIENT}`)
      t.equal(cookie?.value, refreshAnswers[0]?.refreshToken, 'the browser now holds the successor in its cookie')
    }

    // The successor works: the next refresh rotates it, and nobody is signed out.
    await context.unroute('**/oauth/token')
    const [next] = await fireWhenDue(page, 1)
    t.equal(next, 200, 'the next refresh, with the successor, works')
    t.equal(await auth.refreshes('rotated'), 2, 'a second rotation')
    t.equal((await harnessState(page)).events.filter((event) => event.type === 'session-ended').length, 0, 'no session-ended event')
  })
}
