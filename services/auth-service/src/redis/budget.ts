import { AsyncLocalStorage } from 'node:async_hooks'
import { performance } from 'node:perf_hooks'

/** Why a Redis call failed without an answer: the request has no time left for Redis. */
export class RedisBudgetSpentError extends Error {
  constructor () {
    super('the request spent its time for Redis')
    this.name = 'RedisBudgetSpentError'
  }
}

/**
 * The time one request may spend waiting for Redis, shared by all its
 * calls: a request that meets a stalled Redis answers within it however
 * many calls it makes, and a call queued behind others (ioredis sends an
 * auto-pipeline only once the one before it is answered) waits no longer
 * than the calls before it left over.
 *
 * Only time with a call outstanding counts. Password hashing between calls
 * queues behind other hashes under load; counted, it would fail logins
 * against a healthy Redis. A stall is met by a call, and that call gets
 * whatever is left.
 */
export class RedisBudget {
  #leftMs: number
  #waiting = 0
  #since = 0

  constructor (ms: number) {
    this.#leftMs = ms
  }

  /** The time left (ms), less the wait under way. */
  remainingMs (): number {
    return this.#waiting === 0 ? this.#leftMs : this.#leftMs - (performance.now() - this.#since)
  }

  /**
   * Waits for `operation` at most the time left; rejects with a
   * RedisBudgetSpentError after that. The command itself is not recalled:
   * the scripts that change state carry a deadline and refuse once it passed.
   */
  async wait<T> (operation: Promise<T>): Promise<T> {
    const left = this.remainingMs()
    if (left <= 0) {
      operation.catch(() => {})
      throw new RedisBudgetSpentError()
    }
    // Concurrent calls (Promise.all) spend the time once, not once each.
    if (this.#waiting++ === 0) this.#since = performance.now()
    try {
      return await new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new RedisBudgetSpentError()) }, Math.ceil(left))
        operation.then((value) => { clearTimeout(timer); resolve(value) }, (error: unknown) => { clearTimeout(timer); reject(error) })
      })
    } finally {
      if (--this.#waiting === 0) this.#leftMs -= performance.now() - this.#since
    }
  }
}

// The budget of the request being served, found by the storage layer without passing it through every store method.
const current = new AsyncLocalStorage<RedisBudget>()

/** Runs `fn`, and everything it starts, under `budget`. */
export function runWithRedisBudget<T> (budget: RedisBudget, fn: () => T): T {
  return current.run(budget, fn)
}

/** Runs `fn` under no request's budget: background work started by a request outlives its answer. */
export function withoutRedisBudget<T> (fn: () => T): T {
  return current.exit(fn)
}

/** The budget of the request being served, if any. */
export function currentRedisBudget (): RedisBudget | undefined {
  return current.getStore()
}

/** Waits for a Redis operation within the current request's budget (without one: as long as the client's own timeout). */
export async function withinRedisBudget<T> (operation: Promise<T>): Promise<T> {
  const budget = current.getStore()
  return await (budget === undefined ? operation : budget.wait(operation))
}
