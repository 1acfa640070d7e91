import { performance } from 'node:perf_hooks'
import type { RedisClient } from './client.js'
import { RedisBudgetSpentError, currentRedisBudget } from './budget.js'
import { unavailable } from './errors.js'

// Monotonic: a step of this host's clock (NTP, an operator) must not shift every deadline.
const local = (): number => performance.timeOrigin + performance.now()

/**
 * Redis's clock as seen from this process, so that a write can carry the
 * moment, in Redis's own time, after which this process has stopped waiting
 * for it. A script that Redis runs later than that (it sat in a paused
 * server's socket buffer, say) refuses to change anything: a request
 * answered 503 never takes effect afterwards. Host clocks need not agree;
 * the offset is measured with TIME, to within half a round trip, and
 * measured again often enough to follow a step of Redis's clock.
 */
export class RedisClock {
  readonly #timeoutMs: number
  readonly #marginMs: number
  #offsetMs: number | undefined

  /** `timeoutMs`: the command timeout, after which the caller gives up on a command. */
  constructor (timeoutMs: number) {
    this.#timeoutMs = timeoutMs
    // The reply must still travel back in time: stop a little before the timeout.
    this.#marginMs = Math.min(200, Math.floor(timeoutMs / 5))
  }

  /** Measures the offset once; a sample slower than a quarter of the timeout is too coarse to keep. */
  async sample (client: RedisClient): Promise<void> {
    const sent = local()
    const [seconds, micros] = await client.time()
    const received = local()
    if (received - sent > this.#timeoutMs / 4) return
    this.#offsetMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - (sent + received) / 2
  }

  /** How long before the caller gives up a command must have run, for its reply to arrive in time (ms). */
  get marginMs (): number {
    return this.#marginMs
  }

  /**
   * The Redis time (ms) after which a command sent now must not run, for a
   * caller that waits `waitMs` for it (default: the command timeout); 0 (no
   * limit) until measured.
   */
  deadline (waitMs = this.#timeoutMs): number {
    if (this.#offsetMs === undefined) return 0
    return Math.floor(local() + this.#offsetMs + waitMs - this.#marginMs)
  }

  /**
   * The Redis time (ms) after which a write sent now must not run; scripts
   * that take it refuse later. In a request, the moment its Redis budget runs
   * out; throws the 503 once too little is left to send one.
   */
  writeDeadline (): number {
    const budget = currentRedisBudget()
    if (budget === undefined) return this.deadline()
    const left = budget.remainingMs()
    // It could only run too late to be answered in time: not sent at all.
    if (left <= this.#marginMs) throw unavailable(new RedisBudgetSpentError())
    return this.deadline(left)
  }

  /**
   * Measures the offset on every connection of `client` (it may be another
   * server now) and every `intervalMs`; returns what stops it.
   */
  follow (client: RedisClient, intervalMs: number): () => void {
    const sample = (): void => { if (client.status === 'ready') this.sample(client).catch(() => {}) }
    client.on('ready', sample)
    if (client.status === 'ready') sample()
    const timer = setInterval(sample, intervalMs).unref()
    return () => { clearInterval(timer); client.off('ready', sample) }
  }
}
