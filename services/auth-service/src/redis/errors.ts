import { BatonError } from '@baton/tokens'
import { withinRedisBudget } from './budget.js'

// Replies that mean "Redis cannot take this write now", not "the request is wrong".
// STALE: our own scripts, run after we stopped waiting (see RedisClock).
// MOVED and ASK reach the caller only when a redirect could not be followed
// (a pipeline mid-failover): the slot map is being refreshed.
const TRANSIENT_REPLY = /^(READONLY|LOADING|OOM|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|STALE|MOVED|ASK)\b/

/**
 * Runs a Redis operation and turns any storage failure into a 503 that the
 * client may retry. A programming error (a WRONGTYPE, a script bug) stays a 500.
 * In a request, the wait is bounded by what is left of the request's Redis budget.
 */
export async function storage<T> (operation: Promise<T>): Promise<T> {
  try {
    return await withinRedisBudget(operation)
  } catch (error) {
    const name = (error as Error).name
    const message = (error as Error).message ?? ''
    if (name !== 'ReplyError' || TRANSIENT_REPLY.test(message)) throw unavailable(error)
    throw error
  }
}

/** The 503 a client may retry in a second: Redis could not take the request now. */
export function unavailable (cause: unknown): BatonError {
  return new BatonError('BATON_UNAVAILABLE', 'storage is temporarily unavailable', { headers: { 'retry-after': '1' }, cause })
}
