import { createRedisClient, isClusterClient, type RedisClient, type RedisTarget } from '@baton/service-kit'

/** How long one blocking read of the revocation feed waits for news (ms). */
export const FEED_BLOCK_MS = 2000

/**
 * The revocation feed's Redis connection: the only Redis client this service
 * creates, built by the same factory as the auth-service's (one server,
 * Sentinel or a cluster): no offline queue, no silent resends, a reconnect
 * loop that never gives up. It serves a blocking XREAD, so it is a
 * connection of its own and its command timeout outlasts the BLOCK time.
 */
export function createFeedRedisClient (target: RedisTarget | string): RedisClient {
  const client = createRedisClient(target, { commandTimeoutMs: FEED_BLOCK_MS + 1000 })
  // Named, so an operator sees which connection is the feed in CLIENT LIST (one server, or Sentinel's master).
  if (!isClusterClient(client)) client.options.connectionName = 'baton-resource-revocation-feed'
  return client
}
