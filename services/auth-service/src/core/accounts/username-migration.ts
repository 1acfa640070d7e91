import { isClusterClient, type RedisClient } from '../../redis/client.js'
import type { RedisKeys } from '../../redis/keys.js'
import { canonicalUsername } from './username.js'

export interface UsernameMigration {
  /** Name keys looked at. */
  scanned: number
  /** Accounts that got their case-folded key. */
  added: number
  /** Ids of accounts whose folded name another account holds: they keep logging in by their own spelling. */
  conflicts: string[]
}

/**
 * Gives every account keyed only under the old rule (NFKC + lower case) its
 * RFC 8265 key, as its next login would; run once after upgrading, so that
 * no new account can take another spelling of an old name meanwhile. Safe to
 * repeat and to run beside live traffic: it only adds keys, with NX.
 */
export async function addCanonicalUsernameKeys (redis: RedisClient, keys: RedisKeys): Promise<UsernameMigration> {
  const result: UsernameMigration = { scanned: 0, added: 0, conflicts: [] }
  const pattern = `${keys.username('')}*`
  // SCAN sees one server's keys: on a cluster, ask every master.
  for (const node of isClusterClient(redis) ? redis.nodes('master') : [redis]) {
    let cursor = '0'
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500)
      cursor = next
      for (const key of found) {
        result.scanned++
        const id = await redis.get(key)
        const username = id === null ? null : await redis.hget(keys.user(id), 'username')
        if (id === null || username === null) continue
        const canonical = keys.username(canonicalUsername(username))
        if (canonical === key) continue
        if (await redis.set(canonical, id, 'NX') === 'OK') result.added++
        else if (await redis.get(canonical) !== id) result.conflicts.push(id)
      }
    } while (cursor !== '0')
  }
  return result
}
