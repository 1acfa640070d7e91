// `pnpm demo` as a user runs it (scripts/start.mjs --demo), on free ports and
// a private redis-server, for tests that drive its page in real Chromium.
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrowserContext, Page } from 'playwright-core'
import { freePort, startRedis } from '@baton/test-redis'
import { readMetric } from '../../packages/client/test/helper.js'

export { launchBrowser, skipWithoutChromium } from '../../packages/client/test/browser-harness.js'
export { PASSWORD } from '../../packages/client/test/helper.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const START = join(ROOT, 'scripts', 'start.mjs')

/** Where browser tests leave what a person should look at (screenshots): `.tap/artifacts/`, or `BATON_ARTIFACTS`. */
export const ARTIFACTS = process.env.BATON_ARTIFACTS ?? join(ROOT, '.tap', 'artifacts')

/** The whole page, at 1440 px wide, saved as `name` in {@link ARTIFACTS}; returns its path. */
export async function saveScreenshot (page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true })
  const height = await page.evaluate(() => document.documentElement.scrollHeight)
  await page.setViewportSize({ width: 1440, height })
  const path = join(ARTIFACTS, name)
  await page.screenshot({ path })
  return path
}

export interface Demo {
  /** The page, as the demo prints it: `http://localhost:<port>`. */
  pageUrl: string
  /** The auth-service as the page reaches it (`http://localhost:<port>`), its ISSUER. */
  authUrl: string
  /** The resource-service as the page reaches it. */
  apiUrl: string
  child: ChildProcess
  /** What start.mjs said on stderr so far. */
  stderr: () => string
  /** `baton_auth_refreshes_total` by outcome, from the auth-service's /metrics. */
  refreshes: (outcome: string) => Promise<number>
  /** SIGTERM or SIGINT to start.mjs; resolves to its exit code once it and everything it started are gone. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Runs the demo command's script until it says the page is ready. Stopped
 * (SIGTERM) when `t` ends, unless the test stopped it before.
 */
export async function startDemo (t: Test, env: Record<string, string> = {}): Promise<Demo> {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const [demoPort, authPort, resourcePort] = [await freePort(), await freePort(), await freePort()]
  const child = spawn(process.execPath, [START, '--demo'], {
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: redis.url,
      DEMO_PORT: String(demoPort),
      AUTH_PORT: String(authPort),
      RESOURCE_PORT: String(resourcePort),
      LOG_PRETTY: '0',
      LOG_LEVEL: 'warn',
      ...env
    },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  const ready = await new Promise<boolean>((resolve) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes('start: ready:')) resolve(true)
    })
    void exited.then(() => { resolve(false) })
  })
  if (!ready) throw new Error(`pnpm demo did not start: ${stderr}`)
  let stopped: Promise<number | null> | undefined
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (stopped === undefined) {
      child.kill(signal)
      stopped = exited
    }
    return await stopped
  }
  t.teardown(async () => { await stop() })
  return {
    pageUrl: `http://localhost:${demoPort}`,
    authUrl: `http://localhost:${authPort}`,
    apiUrl: `http://localhost:${resourcePort}`,
    child,
    stderr: () => stderr,
    refreshes: async (outcome) => await readMetric(`http://127.0.0.1:${authPort}`, 'baton_auth_refreshes_total', { outcome }),
    stop
  }
}

/** A new tab on the demo page, once it knows whether it has a session. Page errors fail the test. */
export async function openDemoTab (t: Test, context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (error) => { t.fail(`page error: ${error.message}`) })
  await page.setViewportSize({ width: 1440, height: 1000 })
  await page.goto(url)
  await page.waitForSelector('html[data-ready="true"]', { state: 'attached' })
  return page
}

/** The activity log's entries, newest first, as "title" strings. */
export async function activity (page: Page): Promise<string[]> {
  return await page.locator('#activity .title').allInnerTexts()
}
