// DPoP in real Chromium, the SDK loaded from dist/ as ES modules: the key
// pair lives in IndexedDB, non-extractable, one per issuer and client; tabs
// that make it at the same moment end up with one key; and two tabs share
// a DPoP session through one refresh, each signing with that key.
import t from 'tap'
import type { Page } from 'playwright-core'
import type { BatonClient } from '../src/index.js'
import type * as Sdk from '../src/index.js'
import { harnessRoutes, launchBrowser, openTab, skipWithoutChromium } from './browser-harness.js'
import { PASSWORD, startAuthService } from './helper.js'

interface Harness {
  baton: BatonClient
  batonSdk: typeof Sdk
  batonEvents: Array<{ type: string, fromOtherTab?: boolean }>
}

t.setTimeout(300_000)
const skip = skipWithoutChromium(t)

/** In the tab, at `at` (ms since the epoch): the key pair the IndexedDB store gives for `name`, as its public x coordinate and whether it is extractable. */
async function keyAt (page: Page, name: string, at: number): Promise<{ x: string, extractable: boolean }> {
  return await page.evaluate(async ({ name, at }) => {
    const { batonSdk } = globalThis as unknown as Harness
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))
    const pair = await new batonSdk.IndexedDbKeyStore().dpopKeyPair(name)
    return { x: (await crypto.subtle.exportKey('jwk', pair.publicKey)).x!, extractable: pair.privateKey.extractable }
  }, { name, at })
}

async function storedNames (page: Page): Promise<string[]> {
  return await page.evaluate(async () => await new Promise<string[]>((resolve, reject) => {
    const open = indexedDB.open('baton-dpop')
    open.onerror = () => { reject(open.error) }
    open.onsuccess = () => {
      const keys = open.result.transaction('keys').objectStore('keys').getAllKeys()
      keys.onsuccess = () => { open.result.close(); resolve(keys.result as string[]) }
    }
  }))
}

t.test('two tabs that make the key at the same moment end up with one, non-extractable, kept across a reload', { skip }, async (t) => {
  const auth = await startAuthService(t, {}, { routes: harnessRoutes })
  const context = await launchBrowser(t)
  const [first, second] = [await openTab(t, context, auth.url), await openTab(t, context, auth.url)]
  const names = ['race-1', 'race-2', 'race-3', 'race-4', 'race-5']
  for (const name of names) {
    const at = Date.now() + 300
    const [one, two] = await Promise.all([keyAt(first, name, at), keyAt(second, name, at)])
    t.equal(one.x, two.x, `${name}: both tabs got the same key`)
    t.equal(one.extractable, false, `${name}: non-extractable`)
  }
  t.same((await storedNames(first)).sort(), names, 'one stored pair per name, no more')

  const before = await keyAt(first, 'race-1', 0)
  await first.reload()
  await first.waitForSelector('html[data-ready="true"]', { state: 'attached' })
  t.same(await keyAt(first, 'race-1', 0), before, 'after a reload the same key comes back from IndexedDB')
})

t.test('two tabs on one DPoP session: one refresh as the token expires, both go on calling with the shared key', { skip }, async (t) => {
  const auth = await startAuthService(t, { ACCESS_TOKEN_TTL: '10' }, { routes: harnessRoutes })
  const username = await auth.register()
  const context = await launchBrowser(t)
  const proofs: string[] = []
  context.on('request', (request) => { const proof = request.headers().dpop; if (proof !== undefined) proofs.push(proof) })
  const first = await openTab(t, context, auth.url, { dpop: '1', skew: '3000' })
  const second = await openTab(t, context, auth.url, { dpop: '1', skew: '3000' })
  await first.evaluate(async ({ username, password }) => { await (globalThis as unknown as Harness).baton.login(username, password) }, { username, password: PASSWORD })
  await second.waitForFunction(() => (globalThis as unknown as Harness).baton.signedIn, undefined, { timeout: 2000 })
  const tokenTypes = await Promise.all([first, second].map(async (page) => await page.evaluate(() => (globalThis as unknown as Harness).baton.tokenType)))
  t.same(tokenTypes, ['DPoP', 'DPoP'], 'both tabs hold the DPoP token')

  // Both tabs wait until the token is due, then call at once.
  const statuses = await Promise.all([first, second].map(async (page) => await page.evaluate(async () => {
    const { baton } = globalThis as unknown as Harness
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, baton.expiresAt! - 3000 - Date.now())))
    return await Promise.all(Array.from({ length: 5 }, async () => (await baton.fetch('/sessions')).status))
  })))
  t.same(statuses.flat(), Array(10).fill(200), 'every call answered 200')
  t.equal(await auth.refreshes('rotated'), 1, 'one rotation for both tabs')
  t.equal(await auth.refreshes('reuse_detected'), 0)
  const keys = new Set(proofs.map((proof) => JSON.stringify((JSON.parse(Buffer.from(proof.split('.')[0]!, 'base64url').toString()) as { jwk: unknown }).jwk)))
  t.equal(keys.size, 1, `all ${proofs.length} proofs, from both tabs, carry one key`)
  const thumbprints = await Promise.all([first, second].map(async (page) => await page.evaluate(async () => (await (globalThis as unknown as Harness).baton.dpopKey())?.thumbprint)))
  t.equal(thumbprints[0], thumbprints[1], 'each tab\'s client reports the same key')
})
