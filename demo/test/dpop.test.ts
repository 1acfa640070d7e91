// The demo with DPoP (its default), in real Chromium: a whole session whose
// tokens are bound to a key the browser made and cannot read out. Log in,
// call the API, refresh across the access token's expiry, reload, a second
// tab, logout; the key in IndexedDB is non-extractable and is the one the
// tokens name; and the thief's stolen tokens, refresh and access, get
// nothing.
import t from 'tap'
import type { Page, Request } from 'playwright-core'
import { activity, launchBrowser, openDemoTab, PASSWORD, saveScreenshot, skipWithoutChromium, startDemo } from './helper.js'

t.setTimeout(300_000)
const skip = skipWithoutChromium(t)

const visible = async (page: Page, selector: string, timeout = 10_000): Promise<void> => {
  await page.locator(selector).waitFor({ state: 'visible', timeout })
}
const text = async (page: Page, selector: string): Promise<string> => (await page.locator(selector).innerText()).trim()

interface KeyView {
  /** What IndexedDB holds: one entry per key pair. */
  stored: Array<{ name: string, algorithm: string, curve: string, extractable: boolean, usages: string[], thumbprint: string }>
  /** The cnf.jkt of the page client's access token. */
  jkt: string | undefined
  tokenType: string | undefined
}

/** In the page: every key pair in the client's IndexedDB database, read as any script of the page could, and the current token's cnf.jkt. */
async function keyView (page: Page): Promise<KeyView> {
  return await page.evaluate(async () => {
    const request = async <T>(r: IDBRequest<T>): Promise<T> => await new Promise((resolve, reject) => {
      r.onsuccess = () => { resolve(r.result) }
      r.onerror = () => { reject(r.error) }
    })
    const base64url = (bytes: ArrayBuffer): string => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
    const db = await request(indexedDB.open('baton-dpop'))
    const store = db.transaction('keys').objectStore('keys')
    const names = await request(store.getAllKeys()) as string[]
    const pairs = await request(db.transaction('keys').objectStore('keys').getAll()) as CryptoKeyPair[]
    db.close()
    const stored = await Promise.all(pairs.map(async (pair, index) => {
      const { crv, kty, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey)
      const thumbprint = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify({ crv, kty, x, y }))))
      const algorithm = pair.privateKey.algorithm as EcKeyAlgorithm
      return { name: names[index]!, algorithm: algorithm.name, curve: algorithm.namedCurve, extractable: pair.privateKey.extractable, usages: pair.privateKey.usages, thumbprint }
    }))
    const baton = (globalThis as unknown as { baton: { accessToken: () => Promise<string>, tokenType: string | undefined, signedIn: boolean } }).baton
    let jkt: string | undefined
    if (baton.signedIn) {
      const payload = (await baton.accessToken()).split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')
      jkt = (JSON.parse(atob(payload)) as { cnf?: { jkt?: string } }).cnf?.jkt
    }
    return { stored, jkt, tokenType: baton.tokenType }
  })
}

/** Whether the private key can be read out by the page: exportKey must refuse. */
async function exportRefused (page: Page): Promise<boolean> {
  return await page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open('baton-dpop')
      open.onsuccess = () => { resolve(open.result) }
      open.onerror = () => { reject(open.error) }
    })
    const pairs = await new Promise<CryptoKeyPair[]>((resolve) => {
      const all = db.transaction('keys').objectStore('keys').getAll()
      all.onsuccess = () => { resolve(all.result as CryptoKeyPair[]) }
    })
    db.close()
    const refusals = await Promise.all(pairs.map(async (pair) => await crypto.subtle.exportKey('jwk', pair.privateKey).then(() => false, () => true)))
    return refusals.length > 0 && refusals.every(Boolean)
  })
}

t.test('the demo with DPoP: a whole session with tokens bound to a non-extractable key, and a thief who gets nothing', { skip }, async (t) => {
  const demo = await startDemo(t)
  const context = await launchBrowser(t)
  // Every request that carries a token or a proof, as the browser sent it.
  const sent: Array<{ url: string, method: string, authorization: string | undefined, dpop: string | undefined, body: string | undefined }> = []
  context.on('request', (request: Request) => {
    const headers = request.headers()
    if (request.method() === 'OPTIONS' || (headers.authorization === undefined && headers.dpop === undefined)) return
    sent.push({ url: request.url(), method: request.method(), authorization: headers.authorization, dpop: headers.dpop, body: request.postData() ?? undefined })
  })
  const first = await openDemoTab(t, context, demo.pageUrl)
  await visible(first, '#view-signed-out')
  t.equal(await text(first, '#dpop-pill'), 'DPoP', 'the page says its tokens are DPoP-bound')

  const username = `dpop${process.pid}`
  await first.click('#tab-register')
  await first.fill('#username', username)
  await first.fill('#password', PASSWORD)
  await first.click('#auth-submit')
  await visible(first, '#view-signed-in')

  const login = sent.find((request) => request.url === `${demo.authUrl}/oauth/token`)
  t.ok(login?.dpop, 'the login carried a DPoP proof')
  const afterLogin = await keyView(first)
  t.equal(afterLogin.tokenType, 'DPoP', 'the auth-service answered token_type DPoP')
  t.equal(afterLogin.stored.length, 1, 'one key pair in IndexedDB')
  t.match(afterLogin.stored[0], { algorithm: 'ECDSA', curve: 'P-256', extractable: false, usages: ['sign'] }, 'a P-256 signing key, non-extractable')
  t.ok(await exportRefused(first), 'the page cannot export the private key')
  t.equal(afterLogin.jkt, afterLogin.stored[0]!.thumbprint, 'the access token\'s cnf.jkt is that key\'s thumbprint')
  await visible(first, '#dpop-key')
  t.equal(await text(first, '#dpop-key-extractable'), 'non-extractable', 'and the page says so')
  t.equal(await text(first, '#dpop-key-thumbprint'), afterLogin.jkt, 'with the thumbprint')
  t.match(await text(first, '#claims'), `jkt ${afterLogin.jkt!}`, 'the claims table shows cnf')
  const thumbprint = afterLogin.jkt!

  await first.click('#call-me')
  await first.locator('#api-body', { hasText: username }).waitFor()
  t.equal(await text(first, '#api-status'), '200', 'GET /me with the DPoP-bound token')
  const call = sent.findLast((request) => request.url === `${demo.apiUrl}/me`)
  t.match(call, { method: 'GET', authorization: /^DPoP /, dpop: String }, 'sent as Authorization: DPoP, with a proof')

  // The access token lives 20 s and is refreshed 5 s before it expires.
  await first.waitForFunction(() => Number(document.getElementById('stat-rotations')!.textContent) >= 1, undefined, { timeout: 40_000 })
  t.equal(await demo.refreshes('rotated'), 1, 'the auth-service rotated once')
  const refresh = sent.find((request) => request.url === `${demo.authUrl}/oauth/token` && request.body?.includes('grant_type=refresh_token') === true)
  t.ok(refresh?.dpop, 'the refresh carried a proof')
  t.equal((await keyView(first)).jkt, thumbprint, 'the new access token is bound to the same key')
  await first.click('#call-reports')
  await first.locator('#api-body', { hasText: 'rpt-2026-q1-usage' }).waitFor()
  t.equal(await text(first, '#api-status'), '200', 'and the API takes it')

  // A reload: the key is still there, and the session goes on (the cookie's refresh token, with a proof of that key).
  await first.reload()
  await first.waitForSelector('html[data-ready="true"]', { state: 'attached' })
  await visible(first, '#view-signed-in')
  const reloaded = await keyView(first)
  t.equal(reloaded.stored.length, 1, 'after a reload: still one key')
  t.equal(reloaded.jkt, thumbprint, 'the same one, and the session restored with it')

  // A second tab: handed the session, and signing with the same key.
  const second = await openDemoTab(t, context, demo.pageUrl)
  await visible(second, '#view-signed-in')
  t.same((await keyView(second)).stored.map((entry) => entry.thumbprint), [thumbprint], 'the second tab uses the same key')
  await second.click('#call-me')
  await second.locator('#api-body', { hasText: username }).waitFor()
  t.equal(await text(second, '#api-status'), '200', 'and calls the API with its proofs')

  // The thief takes this tab's access token: as Bearer, and with a proof of its own key, the API refuses it.
  await first.click('#steal-access')
  await first.click('#thief-me')
  await first.locator('#thief-log li', { hasText: 'as DPoP' }).waitFor()
  const thiefLines = await first.locator('#thief-log li').allInnerTexts()
  t.match(thiefLines.find((line) => line.includes('as Bearer')), /^401/, 'the stolen access token as Bearer: 401')
  t.match(thiefLines.find((line) => line.includes('as DPoP')), /^401/, 'with a proof of the thief\'s key: 401')

  // The phone app's refresh token, stolen and tried with the thief's key: refused, and the phone's session revoked.
  await first.fill('#phone-password', PASSWORD)
  await first.click('#phone-form button')
  await first.locator('#phone-state', { hasText: 'signed in' }).waitFor()
  await first.click('#steal-phone')
  const stolen = await first.inputValue('#stolen')
  await first.click('#thief-refresh')
  await first.locator('#thief-log li', { hasText: /^400/ }).first().waitFor()
  t.match(await text(first, '#thief-log li:first-child'), /^400\s+invalid_grant/, 'the thief\'s refresh is refused')
  t.equal(await first.inputValue('#stolen'), stolen, 'and brought back no new refresh token')
  await first.locator('#phone-state', { hasText: 'revoked' }).waitFor({ timeout: 30_000 })
  t.ok((await activity(first)).includes('Phone app: its session was revoked when the thief tried its token'), 'the phone learns its session was revoked')
  t.equal(await first.locator('#thief-me').isDisabled(), false, 'the thief has only the access token it stole')
  t.ok(await first.locator('#view-signed-in').isVisible(), 'this browser\'s session was not touched')

  const screenshot = await saveScreenshot(first, 'demo-dpop.png')
  t.comment(`screenshot: ${screenshot}`)

  // Logout: both tabs signed out, the key stays (it binds nothing now) for the next login.
  await first.click('#logout')
  await visible(first, '#view-signed-out')
  await visible(second, '#view-signed-out', 2000)
  t.equal((await keyView(first)).stored.length, 1, 'the key stays for the next login')
  const dpopRequests = sent.filter((request) => request.dpop !== undefined)
  t.ok(dpopRequests.every((request) => request.url.startsWith(demo.authUrl) || request.authorization?.startsWith('DPoP ') === true), 'every proof to the API went with a DPoP token')
  t.comment(`DPoP demo: ${dpopRequests.length} requests carried proofs, all of key ${thumbprint}`)
})
