// The demo as a new user meets it: `pnpm demo`'s script, its page in two
// tabs of a real Chromium, and every step the page offers, clicked: create
// an account, call the API, watch one refresh serve both tabs, a phone app
// whose stolen refresh token gets the session revoked, log out everywhere.
// Then Ctrl-C (SIGINT) must stop everything it started and exit 0.
// A screenshot of the page at the end of the story is left in ARTIFACTS.
import t from 'tap'
import { connect } from 'node:net'
import type { Page } from 'playwright-core'
import { activity, launchBrowser, openDemoTab, PASSWORD, saveScreenshot, skipWithoutChromium, startDemo } from './helper.js'

// Three services start and a 20 s token must be refreshed: minutes on a loaded machine.
t.setTimeout(300_000)
const skip = skipWithoutChromium(t)

const visible = async (page: Page, selector: string, timeout = 10_000): Promise<void> => {
  await page.locator(selector).waitFor({ state: 'visible', timeout })
}
const text = async (page: Page, selector: string): Promise<string> => (await page.locator(selector).innerText()).trim()

async function portClosed (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => { resolve(true) })
  })
}

t.test('the demo page, start to finish, then Ctrl-C', { skip }, async (t) => {
  // Bearer tokens: the story of a stolen refresh token that rotation and reuse detection catch (dpop.test.ts tells DPoP's).
  const demo = await startDemo(t, { DEMO_DPOP: 'off' })
  t.match(demo.stderr(), `open ${demo.pageUrl}`, 'the command says where the page is')
  const context = await launchBrowser(t)
  const first = await openDemoTab(t, context, demo.pageUrl)
  await visible(first, '#view-signed-out')

  // Create an account: the page logs in right after.
  const username = `ada${process.pid}`
  await first.click('#tab-register')
  await first.fill('#username', username)
  await first.fill('#password', PASSWORD)
  await first.click('#auth-submit')
  await visible(first, '#view-signed-in')
  t.equal(await text(first, '#user-pill'), username, 'signed in as the new user')
  t.match(await text(first, '#claims'), /scope\s+profile reports:read/, 'the access token\'s claims are shown, with the demo\'s scopes')
  t.ok(Number(await text(first, '#countdown-seconds')) > 0, 'and its countdown runs')

  await first.click('#call-me')
  await first.locator('#api-body', { hasText: username }).waitFor()
  t.equal(await text(first, '#api-status'), '200', 'GET /me through client.fetch')
  t.match(await text(first, '#api-body'), `"username": "${username}"`, 'answered for the user signed in')
  await first.click('#call-reports')
  await first.locator('#api-body', { hasText: 'rpt-2026-q1-usage' }).waitFor()
  t.equal(await text(first, '#api-status'), '200', 'GET /reports, which needs reports:read')

  // A second tab: signed in by the first, and when the token runs low one refresh serves both.
  const second = await openDemoTab(t, context, demo.pageUrl)
  await visible(second, '#view-signed-in')
  t.ok((await activity(second)).includes('Signed in by another tab'), 'the first tab handed the second its session')
  t.equal(await text(first, '#tabs-count'), '2 open', 'each tab knows of the other')
  // The next time the token runs low, both tabs ask at once: one refresh, handed to the other.
  const numbers = async (page: Page): Promise<{ rotations: number, sent: number, handed: number }> => ({
    rotations: Number(await text(page, '#stat-rotations')), sent: Number(await text(page, '#stat-requests')), handed: Number(await text(page, '#stat-handed'))
  })
  // Measured well away from a refresh, so none is half counted.
  await first.waitForFunction(() => Number(document.getElementById('countdown-seconds')!.textContent) >= 8, undefined, { timeout: 30_000 })
  const before = [await numbers(first), await numbers(second)]
  const rotationsBefore = await demo.refreshes('rotated')
  for (const [index, page] of [first, second].entries()) {
    await page.waitForFunction((seen) => Number(document.getElementById('stat-rotations')!.textContent) > seen, before[index]!.rotations, { timeout: 30_000 })
  }
  const after = [await numbers(first), await numbers(second)]
  const sent = after.map((numbers, index) => numbers.sent - before[index]!.sent)
  const handed = after.map((numbers, index) => numbers.handed - before[index]!.handed)
  const rotations = await demo.refreshes('rotated') - rotationsBefore
  t.comment(`demo, two tabs: refresh requests sent ${sent.join(' + ')}, handed over ${handed.join(' + ')}, rotations counted by the auth-service ${rotations}`)
  t.same([...sent].sort(), [0, 1], 'one tab sent the refresh, the other none')
  t.same([...handed].sort(), [0, 1], 'and the other was handed its result')
  t.equal(rotations, 1, 'the auth-service counted one rotation')
  const [refresher, receiver] = sent[0] === 1 ? [first, second] : [second, first]
  t.ok((await activity(refresher)).includes('Refreshed by this tab'), 'the refreshing tab says so')
  t.match((await activity(receiver)).find((entry) => entry.startsWith('New access token handed over')), /handed over by Tab \w+/, 'the log names the tab that refreshed')

  // Sessions: this browser's, then a phone app's.
  await visible(first, '#sessions tr[data-session]')
  t.equal(await first.locator('#sessions tr[data-session]').count(), 1, 'one session')
  await first.fill('#phone-password', PASSWORD)
  await first.click('#phone-form button')
  await first.locator('#phone-state', { hasText: 'signed in' }).waitFor()
  await first.locator('#sessions tr[data-session]').nth(1).waitFor()
  t.equal(await first.locator('#sessions tr[data-session]').count(), 2, 'the phone\'s login is a session of its own')

  // The thief takes the phone's refresh token, uses it first, and calls the API as the victim.
  await first.click('#steal-phone')
  t.not(await first.inputValue('#stolen'), '', 'the stolen token is in the thief\'s hands')
  await first.click('#thief-refresh')
  await first.locator('#thief-log li').first().waitFor()
  t.match(await text(first, '#thief-log li:first-child'), /^200\s+In\./, 'the thief\'s refresh worked')
  await first.click('#thief-me')
  await first.locator('#thief-log li', { hasText: 'GET /me answers as' }).waitFor()

  // The phone's next refresh presents the spent token: reuse, the whole session revoked, its session-ended event.
  await first.locator('#phone-state', { hasText: 'revoked' }).waitFor({ timeout: 20_000 })
  t.ok((await activity(first)).includes('Phone app: refresh token reuse detected, session revoked'), 'the phone\'s session-ended event fired: reuse detected')
  await first.click('#thief-me')
  await first.locator('#thief-log li', { hasText: /^401/ }).first().waitFor()
  t.match(await text(first, '#thief-log li:first-child'), /^401\s+invalid_token/, 'the API refuses the thief\'s access token at once')
  await first.click('#thief-refresh')
  await first.locator('#thief-log li', { hasText: /^400/ }).first().waitFor()
  t.match(await text(first, '#thief-log li:first-child'), /^400\s+invalid_grant/, 'and the auth-service the thief\'s refresh token')
  t.equal(await demo.refreshes('reuse_detected'), 1, 'the auth-service counted one reuse')
  await first.click('#sessions-reload')
  await first.waitForFunction(() => document.querySelectorAll('#sessions tr[data-session]').length === 1)
  t.ok(await first.locator('#view-signed-in').isVisible(), 'this browser\'s own session was not touched')

  // The page at the end of the story, whole, for a person to look at.
  const screenshot = await saveScreenshot(first, 'demo-main-flow.png')
  t.comment(`screenshot: ${screenshot}`)

  // Log out everywhere in one tab: both tabs are signed out.
  await second.click('#logout-everywhere')
  await visible(second, '#view-signed-out')
  await visible(first, '#view-signed-out', 2000)
  t.ok((await activity(first)).includes('Logged out everywhere (in another tab)'), 'the other tab was signed out too')

  // Ctrl-C: everything the command started stops, and it exits 0.
  const ports = [demo.pageUrl, demo.authUrl, demo.apiUrl].map((url) => Number(new URL(url).port))
  t.equal(await demo.stop('SIGINT'), 0, 'SIGINT: the demo exits 0')
  t.same(await Promise.all(ports.map(portClosed)), [true, true, true], 'the page, the auth-service and the resource-service are gone')
})

t.test('killed outright (SIGKILL, as pnpm does to its script\'s process group): the page and both services stop by themselves', async (t) => {
  const demo = await startDemo(t)
  const ports = [demo.pageUrl, demo.authUrl, demo.apiUrl].map((url) => Number(new URL(url).port))
  t.equal(await demo.stop('SIGKILL'), null, 'the script is gone without a word')
  const deadline = Date.now() + 30_000
  let closed = await Promise.all(ports.map(portClosed))
  while (closed.includes(false) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    closed = await Promise.all(ports.map(portClosed))
  }
  t.same(closed, [true, true, true], 'each noticed its IPC channel close, and stopped')
})
