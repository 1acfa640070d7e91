// The loader's schedule, driven by a key source the test scripts. What must
// not happen (a retry too many) is checked against something that must happen
// after it: a later fetch, or a witness loader's retries, never a fixed sleep.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import type { JwksKeySource } from '@baton/verifier'
import { jwksLoaderPlugin, type JwksLoaderOptions } from '../src/plugins/jwks-loader.js'
import { waitFor } from './helper.js'

interface Scripted {
  /** When each refresh was asked for (ms since the epoch). */
  calls: number[]
  closed: () => boolean
}

/** A loader on a bare app, over a source whose first `failures` refreshes fail. */
async function loader (t: Test, failures: number, options: Omit<JwksLoaderOptions, 'source'>): Promise<Scripted & { close: () => Promise<void> }> {
  const calls: number[] = []
  let closed = false
  const source = {
    refresh: async () => {
      calls.push(Date.now())
      if (calls.length <= failures) throw new Error('the issuer is down')
    },
    ready: () => calls.length > failures,
    close: () => { closed = true }
  } as unknown as JwksKeySource
  const app = Fastify({ logger: false })
  await app.register(jwksLoaderPlugin, { source, ...options })
  await app.ready()
  t.teardown(async () => { await app.close() })
  return { calls, closed: () => closed, close: async () => { await app.close() } }
}

t.test('failed fetches are retried with growing delays; once the keys load, the next fetch is the periodic refresh', async (t) => {
  const refreshIntervalMs = 500
  const { calls } = await loader(t, 2, { refreshIntervalMs, initialRetryDelayMs: 50 })
  // The fourth call is the first after the successful third: it comes when it comes.
  await waitFor(() => calls.length >= 4, 10_000, 10)
  const gaps = calls.slice(1).map((at, i) => at - calls[i]!)
  // Timers fire late on a loaded machine, never early: only lower bounds are safe.
  t.ok(gaps[0]! >= 35 && gaps[1]! >= 75, `retries after 50 ms and 100 ms, each ±20 %: ${gaps.slice(0, 2).join(', ')} ms`)
  t.ok(gaps[2]! >= refreshIntervalMs - 5, `then nothing until the refresh interval (${refreshIntervalMs} ms): ${gaps[2]} ms`)
})

t.test('closing the app stops the retries and closes the source', async (t) => {
  // Delays of 20, then 40 ms, each ±20 %: the closed loader's pending retry was due
  // within 48 ms of the close, and four of the witness's retries take at least 64.
  const options = { refreshIntervalMs: 60_000, initialRetryDelayMs: 20, maxRetryDelayMs: 40 }
  const closing = await loader(t, Infinity, options)
  const witness = await loader(t, Infinity, options)
  await waitFor(() => closing.calls.length >= 2, 10_000, 5)
  await closing.close()
  const callsAtClose = closing.calls.length
  const witnessAtClose = witness.calls.length
  await waitFor(() => witness.calls.length >= witnessAtClose + 4, 10_000, 5)
  t.equal(closing.calls.length, callsAtClose, `no fetch after the close, while the open witness retried ${witness.calls.length - witnessAtClose} times`)
  t.ok(closing.closed(), 'the source is closed with the app')
})
