// Cookie mode in real Chromium, on the demo's three origins of one site
// (page, auth-service, API on http://localhost): the refresh token lives
// only in an HttpOnly cookie, no token is ever in script-readable storage,
// a cross-site request cannot use the cookie, and CORS answers the page's
// origin and no other.
import t from 'tap'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { BrowserContext, Page } from 'playwright-core'
import { launchBrowser, openDemoTab, PASSWORD, skipWithoutChromium, startDemo, type Demo } from './helper.js'

t.setTimeout(300_000)
const skip = skipWithoutChromium(t)

const COOKIE = '__Host-baton-refresh-baton-demo'
// Another site: Playwright answers for it, so the browser treats it as any attacker's page.
const EVIL = 'http://evil.test'

/** Everything a script of the page can read back from the browser's storage, as one string. */
async function scriptReadableStorage (page: Page): Promise<string> {
  return await page.evaluate(async () => {
    const request = async <T>(r: { onsuccess: unknown, onerror: unknown, result: T, error: unknown }): Promise<T> => await new Promise((resolve, reject) => {
      r.onsuccess = () => { resolve(r.result) }
      r.onerror = () => { reject(r.error) }
    })
    const indexed: unknown[] = []
    for (const { name } of await indexedDB.databases()) {
      if (name === undefined) continue
      const db = await request(indexedDB.open(name))
      for (const store of Array.from(db.objectStoreNames)) indexed.push({ name, store, values: await request(db.transaction(store).objectStore(store).getAll()) })
      db.close()
    }
    return JSON.stringify({ cookie: document.cookie, localStorage: { ...localStorage }, sessionStorage: { ...sessionStorage }, indexedDB: indexed })
  })
}

/** Signs a new user up on the demo page through its form. */
async function signUp (page: Page, username: string): Promise<void> {
  await page.click('#tab-register')
  await page.fill('#username', username)
  await page.fill('#password', PASSWORD)
  await page.click('#auth-submit')
  await page.locator('#view-signed-in').waitFor({ state: 'visible' })
}

async function refreshCookie (context: BrowserContext, demo: Demo): Promise<{ value: string, httpOnly: boolean, secure: boolean, sameSite: string, path: string } | undefined> {
  return (await context.cookies(demo.authUrl)).find((cookie) => cookie.name === COOKIE)
}

/** An OPTIONS request as a browser's preflight sends it, from `origin`. */
async function preflight (url: string, origin: string, method: string, headers: string): Promise<{ status: number, headers: IncomingHttpHeaders }> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(url.replace('//localhost:', '//127.0.0.1:'), {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers }
    }, (response) => {
      response.resume()
      response.once('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers }) })
    })
    request.once('error', reject)
    request.end()
  })
}

const corsHeaders = (headers: IncomingHttpHeaders): string[] => Object.keys(headers).filter((name) => name.startsWith('access-control-'))

t.test('cookie mode in a browser', { skip }, async (t) => {
  const demo = await startDemo(t)
  const context = await launchBrowser(t)
  await context.route(`${EVIL}/**`, async (route) => {
    await route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><title>A page of another site</title>
<form method="post" action="${demo.authUrl}/oauth/token">
  <input name="grant_type" value="refresh_token"><input name="client_id" value="baton-demo">
</form>`
    })
  })
  const tokenAnswers: string[] = []
  context.on('response', (response) => {
    if (response.url() === `${demo.authUrl}/oauth/token` && response.request().method() === 'POST') {
      void response.text().then((body) => { tokenAnswers.push(body) }, () => {})
    }
  })

  const page = await openDemoTab(t, context, demo.pageUrl)
  t.equal(await page.locator('#mode-pill').innerText(), 'Cookie mode', 'the demo runs in cookie mode')
  await signUp(page, `cookie${process.pid}`)

  await t.test('no refresh token and no access token in document.cookie, localStorage, sessionStorage or IndexedDB', async (t) => {
    const second = await openDemoTab(t, context, demo.pageUrl)
    await second.locator('#view-signed-in').waitFor({ state: 'visible' })
    const check = async (when: string): Promise<string> => {
      const cookie = await refreshCookie(context, demo)
      t.ok(cookie !== undefined && cookie.value !== '', `${when}: the browser holds the refresh token cookie`)
      t.match(cookie, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/' }, `${when}: HttpOnly, Secure, SameSite=Strict, Path=/ (__Host-)`)
      for (const [name, tab] of [['first tab', page], ['second tab', second]] as const) {
        const accessToken = await tab.evaluate(async () => await (globalThis as unknown as { baton: { accessToken: () => Promise<string> } }).baton.accessToken())
        const storage = await scriptReadableStorage(tab)
        t.notOk(storage.includes(cookie!.value), `${when}, ${name}: no refresh token where a script can read`)
        t.notOk(storage.includes(accessToken), `${when}, ${name}: nor the access token`)
        t.notOk(storage.includes(COOKIE), `${when}, ${name}: document.cookie does not even show the cookie's name`)
      }
      return cookie!.value
    }
    const first = await check('after login')
    // The next refresh sets a new cookie: wait for it (a 20 s token is refreshed 5 s before it expires).
    await page.locator('#stat-rotations', { hasText: '1' }).waitFor({ timeout: 30_000 })
    const next = await check('after a refresh')
    t.not(next, first, 'the refresh rotated the cookie')
    t.ok(tokenAnswers.length >= 2, `${tokenAnswers.length} token answers seen`)
    t.notOk(tokenAnswers.some((body) => body.includes('refresh_token')), 'no token answer carried a refresh token in its body')
    t.notOk(tokenAnswers.some((body) => body.includes(first) || body.includes(next)), 'nor its value anywhere')
    await second.close()
  })

  await t.test('without X-Baton-Client the token endpoint answers 403, even from the allowed origin', async (t) => {
    const rotated = await demo.refreshes('rotated')
    const answer = await page.evaluate(async (authUrl) => {
      const response = await fetch(`${authUrl}/oauth/token`, {
        method: 'POST', credentials: 'include', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'baton-demo' })
      })
      return { status: response.status, body: await response.json() as { error?: string, error_description?: string } }
    }, demo.authUrl)
    t.match(answer, { status: 403, body: { error: 'invalid_request', error_description: /X-Baton-Client/ } })
    t.equal(await demo.refreshes('rotated'), rotated, 'and nothing was refreshed')
  })

  await t.test('a cross-site form POST to the token endpoint gets 403; a cross-site script cannot even send with the header', async (t) => {
    const rotated = await demo.refreshes('rotated')
    const evil = await context.newPage()
    await evil.goto(`${EVIL}/`)
    const [response] = await Promise.all([
      evil.waitForResponse(`${demo.authUrl}/oauth/token`),
      evil.evaluate(() => { document.forms[0]!.submit() })
    ])
    t.equal(response.status(), 403, 'the form POST is refused')
    t.match(await response.json(), { error: 'invalid_request', error_description: /allowed origins/ })

    // The form took the tab to the auth-service's answer: back to the other site.
    await evil.goto(`${EVIL}/`)
    const scripted = await evil.evaluate(async (authUrl) => await fetch(`${authUrl}/oauth/token`, {
      method: 'POST', credentials: 'include', headers: { 'x-baton-client': '1' }, body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'baton-demo' })
    }).then((answer) => `answered ${answer.status}`, (error: Error) => `blocked: ${error.message}`), demo.authUrl)
    t.match(scripted, /^blocked/, 'the browser stops a cross-site script at the preflight')
    t.equal(await demo.refreshes('rotated'), rotated, 'nothing was refreshed')
    await evil.close()

    await page.click('#call-me')
    await page.locator('#api-status', { hasText: '200' }).waitFor()
    t.ok(await page.locator('#view-signed-in').isVisible(), 'and the victim is still signed in')
  })

  await t.test('a preflight from the page\'s origin gets 204 and the CORS headers; from another origin, none', async (t) => {
    const otherSite = demo.pageUrl.replace('localhost', '127.0.0.1')
    const cases = [
      { url: `${demo.authUrl}/oauth/token`, method: 'POST', headers: 'content-type,x-baton-client', credentials: 'true' },
      { url: `${demo.authUrl}/sessions/some-id`, method: 'DELETE', headers: 'authorization', credentials: 'true' },
      { url: `${demo.apiUrl}/me`, method: 'GET', headers: 'authorization', credentials: undefined }
    ]
    for (const { url, method, headers, credentials } of cases) {
      const path = new URL(url).pathname
      const allowed = await preflight(url, demo.pageUrl, method, headers)
      t.equal(allowed.status, 204, `${method} ${path} from the page: 204`)
      t.equal(allowed.headers['access-control-allow-origin'], demo.pageUrl, `${path}: the page's origin allowed`)
      t.match(allowed.headers['access-control-allow-methods'], method, `${path}: ${method} allowed`)
      for (const header of headers.split(',')) t.match(allowed.headers['access-control-allow-headers'], new RegExp(`\\b${header}\\b`, 'i'), `${path}: ${header} allowed`)
      t.equal(allowed.headers['access-control-allow-credentials'], credentials, `${path}: credentials ${credentials === undefined ? 'not invited (bearer tokens only)' : 'allowed'}`)
      for (const origin of [otherSite, EVIL]) {
        const refused = await preflight(url, origin, method, headers)
        t.same(corsHeaders(refused.headers), [], `${method} ${path} from ${origin}: no CORS header (status ${refused.status})`)
      }
    }
  })

  await t.test('log out everywhere clears the refresh-token cookie from the browser', async (t) => {
    t.ok(await refreshCookie(context, demo), 'signed in: the browser holds the cookie')
    await page.click('#logout-everywhere')
    await page.locator('#view-signed-out').waitFor({ state: 'visible' })
    t.equal(await refreshCookie(context, demo), undefined, 'signed out everywhere: the cookie is gone, not left to fail on the next refresh')
  })
})
