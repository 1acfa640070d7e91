import { performance } from 'node:perf_hooks'
import type { RedisClient } from '@baton/service-kit'

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
}
