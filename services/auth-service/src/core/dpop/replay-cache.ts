import { createHash } from 'node:crypto'
import type { DpopReplayCache } from '@baton/verifier/dpop'
import type { RedisClient } from '../../redis/client.js'
import type { RedisKeys } from '../../redis/keys.js'
import { storage } from '../../redis/errors.js'

/**
 * The `jti`s of the DPoP proofs the token endpoint accepted, in Redis so
 * that every instance refuses a proof another one took (RFC 9449 §11.1).
 * One `SET NX` per proof: the check and the write are one atomic command,
 * and the key lives exactly as long as the proof could still be accepted.
 */
export class RedisDpopReplayCache implements DpopReplayCache {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #now: () => number

  constructor (redis: RedisClient, keys: RedisKeys, now: () => number) {
    this.#redis = redis
    this.#keys = keys
    this.#now = now
  }

  /** True the first time `jti` is seen before `expiresAtSeconds`; false for a replay. */
  async remember (jti: string, expiresAtSeconds: number): Promise<boolean> {
    // At least a second: a proof accepted on the edge of its window must still be remembered.
    const ttlMs = Math.max(1000, Math.ceil(expiresAtSeconds * 1000 - this.#now()))
    // Hashed: a jti is the client's string, of any length or alphabet.
    const key = this.#keys.dpopProof(createHash('sha256').update(jti).digest('base64url'))
    return await storage(this.#redis.set(key, '1', 'PX', ttlMs, 'NX')) === 'OK'
  }
}
