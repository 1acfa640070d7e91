import type { RedisClient } from '@baton/service-kit'
import { BatonError } from '@baton/tokens'
import type { RedisKeys } from './redis-keys.js'
import { storage } from './plugins/redis.js'
import { isId, randomId } from './refresh-token.js'

export interface UserRecord {
  id: string
  username: string
  passwordHash: string
  scopes: string[]
  createdAt: number
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
 * a directory) only has to keep usernames unique without regard to case and
 * swap password hashes atomically.
 */
export interface UserStore {
  /** Throws BATON_USERNAME_TAKEN when the name is in use, in any case. */
  create: (user: NewUser) => Promise<UserRecord>
  findByUsername: (username: string) => Promise<UserRecord | undefined>
  findById: (id: string) => Promise<UserRecord | undefined>
  /** Sets a new hash only if the stored one is still `expectedHash`. */
  replacePasswordHash: (id: string, expectedHash: string, nextHash: string, now: number) => Promise<boolean>
}

/** The form in which usernames are compared: NFKC, then lower case. */
export function normalizeUsername (username: string): string {
  return username.normalize('NFKC').toLowerCase()
}

export class RedisUserStore implements UserStore {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #now: () => number

  constructor (redis: RedisClient, keys: RedisKeys, now: () => number) {
    this.#redis = redis
    this.#keys = keys
    this.#now = now
  }

  async create (user: NewUser): Promise<UserRecord> {
    const record: UserRecord = {
      id: randomId(),
      username: user.username,
      passwordHash: user.passwordHash,
      scopes: [...user.scopes],
      createdAt: this.#now()
    }
    const userKey = this.#keys.user(record.id)
    // The record and the name claim hash to different slots, so they cannot
    // share a script: write the record under its fresh id first, then claim
    // the name atomically; a lost claim removes the record again.
    await storage(this.#redis.hset(userKey, {
      id: record.id,
      username: record.username,
      password_hash: record.passwordHash,
      scopes: record.scopes.join(' '),
      created_at: String(record.createdAt)
    }))
    const claimed = await storage(this.#redis.set(this.#keys.username(normalizeUsername(user.username)), record.id, 'NX'))
    if (claimed === null) {
      await storage(this.#redis.del(userKey))
      throw new BatonError('BATON_USERNAME_TAKEN', 'that username is taken')
    }
    return record
  }

  async findByUsername (username: string): Promise<UserRecord | undefined> {
    const id = await storage(this.#redis.get(this.#keys.username(normalizeUsername(username))))
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
    return await storage(this.#redis.batonChangePassword(this.#keys.user(id), expectedHash, nextHash, now)) === 1
  }
}
