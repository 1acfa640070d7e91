// Two tabs of one real Chromium, the SDK loaded from dist/ as ES modules,
// against a real auth-service: as the access token is about to expire both
// tabs fire 20 requests at once. The auth-service's metrics must count one
// rotation, and both tabs must still be signed in.
import t from 'tap'
import type { Page } from 'playwright-core'
import type { BatonClient } from '../src/index.js'
import { chromiumMissing, harnessRoutes, launchBrowser, openTab } from './browser-harness.js'
import { PASSWORD, startAuthService } from './helper.js'

// What the harness page puts on window.
interface Harness {
  baton: BatonClient
  batonEvents: Array<{ type: string, fromOtherTab?: boolean, reason?: string }>
}

const ACCESS_TOKEN_TTL_S = 10 // the floor the auth-service allows
const SKEW_MS = 3_000
const PER_TAB = 20

const missing = chromiumMissing()
if (missing !== undefined) t.comment(`browser tests skipped: ${missing}`)

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

t.test('two tabs, 20 requests each as the access token expires: one rotation, both stay signed in', { skip: missing }, async (t) => {
  const auth = await startAuthService(t, { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S) }, { routes: harnessRoutes })
  const username = await auth.register()
  const context = await launchBrowser(t)
  const tokenRequests: string[] = []
  context.on('request', (request) => { if (request.url().endsWith('/oauth/token')) tokenRequests.push(request.postData() ?? '') })

  const first = await openTab(t, context, auth.url, { skew: String(SKEW_MS) })
  const second = await openTab(t, context, auth.url, { skew: String(SKEW_MS) })
  t.same(await first.evaluate(() => typeof (globalThis as unknown as { navigator: { locks?: unknown } }).navigator.locks), 'object', 'the page has the Web Locks API')

  await first.evaluate(async ({ username, password }) => { await (globalThis as unknown as Harness).baton.login(username, password) }, { username, password: PASSWORD })
  await second.waitForFunction(() => (globalThis as unknown as Harness).baton.signedIn, undefined, { timeout: 2000 })
  const before = await harnessState(second)
  t.match(before.events, [{ type: 'signed-in', fromOtherTab: true }], 'the second tab was signed in by the first tab\'s login')
  t.equal(before.sessionId, (await harnessState(first)).sessionId, 'one session')
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
