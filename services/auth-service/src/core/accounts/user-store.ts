import { BatonError } from '@baton/tokens'
import type { RedisClient } from '../../redis/client.js'
import type { RedisKeys } from '../../redis/keys.js'
import { storage } from '../../redis/errors.js'
import { isId, randomId } from '../ids.js'
import { canonicalUsername, legacyUsernameKey } from './username.js'

export interface UserRecord {
  id: string
  username: string
  passwordHash: string
  scopes: string[]
  createdAt: number
  /**
   * Raised by every change that ends all of the user's sessions (password
   * change, "log out everywhere"). Read with `passwordHash` (or before it): a
   * login creates its session only if it has not moved on since. Missing: 0.
   */
  credentialVersion: number
  /** Set while an operator has locked the account (ms since the epoch): its logins are refused. */
  lockedAt?: number
}

export interface NewUser {
  username: string
  passwordHash: string
  scopes: readonly string[]
}

/**
 * Where accounts live. The Redis store is the default; any other store (SQL,
 * a directory) only has to keep usernames unique by their canonical form
 * ({@link normalizeUsername}), swap password hashes atomically, and read
 * `credentialVersion` from the field the session scripts raise
 * (`credential_version` of the user's Redis hash) no later than the password
 * hash.
 */
export interface UserStore {
  /** Throws BATON_USERNAME_TAKEN when the name is in use, in any case, width or spelling with the same canonical form. */
  create: (user: NewUser) => Promise<UserRecord>
  findByUsername: (username: string) => Promise<UserRecord | undefined>
  findById: (id: string) => Promise<UserRecord | undefined>
  /** Sets a new hash only if the stored one is still `expectedHash`. */
  replacePasswordHash: (id: string, expectedHash: string, nextHash: string, now: number) => Promise<boolean>
}

/** The form in which usernames are compared: RFC 8265 UsernameCaseMapped (width mapping, full case folding, NFC). */
export function normalizeUsername (username: string): string {
  return canonicalUsername(username)
}

export class RedisUserStore implements UserStore {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #now: () => number
  readonly #deadline: () => number

  /** `deadline`: the Redis time after which a write sent now must not run (RedisClock). */
  constructor (redis: RedisClient, keys: RedisKeys, now: () => number, options: { deadline?: () => number } = {}) {
    this.#redis = redis
    this.#keys = keys
    this.#now = now
    this.#deadline = options.deadline ?? (() => 0)
  }

  async create (user: NewUser): Promise<UserRecord> {
    const record: UserRecord = {
      id: randomId(),
      username: user.username,
      passwordHash: user.passwordHash,
      scopes: [...user.scopes],
      createdAt: this.#now(),
      credentialVersion: 0
    }
    const userKey = this.#keys.user(record.id)
    // The record and the name claim hash to different slots, so they cannot
    // share a script: write the record under its fresh id first, then claim
    // the name atomically; a lost claim removes the record again. A late
    // claim refuses (STALE): the record, which no name points to, stays unused.
    await storage(this.#redis.hset(userKey, {
      id: record.id,
      username: record.username,
      password_hash: record.passwordHash,
      scopes: record.scopes.join(' '),
      created_at: String(record.createdAt)
    }))
    const canonical = normalizeUsername(user.username)
    const legacy = legacyUsernameKey(user.username)
    // An account from before case folding is keyed by its old form until its
    // next login adds the new one. Old keys are never written any more, so
    // this read cannot be overtaken by a write it should have seen.
    const takenOfOld = legacy !== canonical && await storage(this.#redis.exists(this.#keys.username(legacy))) === 1
    const claimed = takenOfOld ? 0 : await storage(this.#redis.batonClaimUsername(this.#keys.username(canonical), record.id, this.#deadline()))
    if (claimed === 0) {
      await storage(this.#redis.del(userKey))
      throw new BatonError('BATON_USERNAME_TAKEN', 'that username is taken')
    }
    return record
  }

  async findByUsername (username: string): Promise<UserRecord | undefined> {
    const canonical = normalizeUsername(username)
    const legacy = legacyUsernameKey(username)
    if (legacy === canonical) return await this.#findByKey(canonical)
    // The old form first: where an old account and a newer one now fold
    // together, whoever types the old account's own spelling means it.
    const old = await this.#findByKey(legacy)
    if (old === undefined) return await this.#findByKey(canonical)
    // Give the old account its canonical key (unless another account holds
    // it), so every case and width of its name finds it from now on.
    const own = normalizeUsername(old.username)
    if (own !== legacyUsernameKey(old.username)) await storage(this.#redis.set(this.#keys.username(own), old.id, 'NX'))
    return old
  }

  async #findByKey (normalized: string): Promise<UserRecord | undefined> {
    const id = await storage(this.#redis.get(this.#keys.username(normalized)))
    return id === null ? undefined : await this.findById(id)
  }

  async findById (id: string): Promise<UserRecord | undefined> {
    if (!isId(id)) return undefined
    const fields = await storage(this.#redis.hgetall(this.#keys.user(id)))
    if (fields.id === undefined || fields.password_hash === undefined || fields.username === undefined) return undefined
    return {
      id: fields.id,
      username: fields.username,
      passwordHash: fields.password_hash,
      scopes: (fields.scopes ?? '').split(' ').filter((scope) => scope !== ''),
      createdAt: Number(fields.created_at),
      credentialVersion: Number(fields.credential_version ?? 0),
      ...(fields.locked_at === undefined ? {} : { lockedAt: Number(fields.locked_at) })
    }
  }

  /**
   * Locks (or unlocks) a user: 'changed', 'unchanged' when it already was,
   * 'not_found'. Ending the user's sessions is the caller's part.
   */
  async setLocked (id: string, locked: boolean, now: number, reason = ''): Promise<'changed' | 'unchanged' | 'not_found'> {
    if (!isId(id)) return 'not_found'
    const result = await storage(this.#redis.batonSetUserLock(this.#keys.user(id), locked ? 'lock' : 'unlock', now, reason))
    return result === 1 ? 'changed' : result === 0 ? 'not_found' : 'unchanged'
  }

  async replacePasswordHash (id: string, expectedHash: string, nextHash: string, now: number): Promise<boolean> {
    return await storage(this.#redis.batonChangePassword(this.#keys.user(id), expectedHash, nextHash, now, this.#deadline())) === 1
  }
}
