// Real Chromium for the client's browser tests: Debian's `chromium` package
// driven by playwright-core (which downloads no browser of its own), and a
// page served by the auth-service under test itself, so the page, the SDK
// and the endpoints share one origin.
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import type { AuthApp } from './helper.js'

/** Where Debian's package puts the browser; `BATON_CHROMIUM` points elsewhere. */
export const CHROMIUM = process.env.BATON_CHROMIUM ?? '/usr/bin/chromium'

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumMissing (): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no chromium binary at ${CHROMIUM}: apt-get install chromium (.ci/run does), or set BATON_CHROMIUM`
}

/**
 * The `skip` option of a browser test: false when Chromium is there, else
 * why not. On a developer's machine a missing browser skips, saying so; in
 * CI (`CI` set and not `false`/`0`) it fails the run, since a skipped test
 * proves nothing there.
 */
export function skipWithoutChromium (t: Test): string | false {
  const missing = chromiumMissing()
  if (missing === undefined) return false
  if (!['', '0', 'false'].includes(process.env.CI ?? '')) t.fail(`the browser tests must run in CI: ${missing}`)
  else t.comment(`browser tests skipped: ${missing}`)
  return missing
}

// Headless, and nothing that talks to the network on its own or outlives the test.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

/**
 * Launches Chromium on a fresh profile directory and returns its one
 * context: every page opened in it is a tab of the same browser (one cookie
 * jar, one Web Locks manager, one BroadcastChannel space). Closed, and the
 * profile removed, when `t` ends.
 */
export async function launchBrowser (t: Test): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'baton-chromium-'))
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
  t.teardown(async () => {
    await context.close()
    await rm(profile, { recursive: true, force: true })
  })
  return context
}

const DIST = fileURLToPath(new URL('../dist/', import.meta.url))

/**
 * The page every tab loads: `@baton/client` straight from dist/ as ES
 * modules (a module that imported anything Node-only would fail to load),
 * one client in `window.baton`, and everything it reports in
 * `window.batonEvents`. Query parameters set client options: `skew`
 * (refreshSkewMs), `delivery` (refreshTokenDelivery), `client` (clientId),
 * `dpop` (dpop: true).
 */
const PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Baton client harness</title>
<script type="module">
import * as sdk from './client/index.js'
const params = new URLSearchParams(location.search)
const options = { issuer: location.origin }
if (params.has('skew')) options.refreshSkewMs = Number(params.get('skew'))
if (params.has('delivery')) options.refreshTokenDelivery = params.get('delivery')
if (params.has('client')) options.clientId = params.get('client')
if (params.has('dpop')) options.dpop = true
window.batonSdk = sdk
window.baton = sdk.createClient(options)
window.batonEvents = []
for (const type of ['signed-in', 'refreshed', 'session-ended']) {
  window.baton.on(type, (event) => { window.batonEvents.push({ type, at: Date.now(), ...event }) })
}
document.documentElement.dataset.ready = 'true'
</script>
</html>
`

/** Adds `GET /harness/` (the page) and `GET /harness/client/<module>.js` (the SDK's dist) to the auth-service under test. */
export async function harnessRoutes (app: AuthApp): Promise<void> {
  app.get('/harness/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(PAGE))
  app.get<{ Params: { module: string } }>('/harness/client/:module', async (request, reply) => {
    const { module } = request.params
    if (!/^[\w-]+\.js$/.test(module)) return await reply.code(404).send()
    const source = await readFile(join(DIST, module), 'utf8').catch(() => undefined)
    if (source === undefined) return await reply.code(404).send()
    return await reply.type('text/javascript; charset=utf-8').send(source)
  })
}

/** A new tab on the harness page, once its client is made. Page errors fail the test. */
export async function openTab (t: Test, context: BrowserContext, baseUrl: string, query: Record<string, string> = {}): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (error) => { t.fail(`page error: ${error.message}`) })
  await page.goto(`${baseUrl}/harness/?${new URLSearchParams(query).toString()}`)
  await page.waitForSelector('html[data-ready="true"]', { state: 'attached' })
  return page
}
