import { Redis } from 'ioredis'

/** How long one blocking read of the revocation feed waits for news (ms). */
export const FEED_BLOCK_MS = 2000

/**
 * The revocation feed's Redis connection: the only Redis client this service
 * creates, and the one place to change to reach Redis another way (a cluster
 * client, Sentinel). Set to fail fast like the auth-service's: no offline
 * queue, no silent resends, a reconnect loop that never gives up. It serves a
 * blocking XREAD, so it is a connection of its own and its command timeout
 * outlasts the BLOCK time.
 */
export function createFeedRedisClient (url: string): Redis {
  return new Redis(url, {
    lazyConnect: true,
    connectionName: 'baton-resource-revocation-feed',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: FEED_BLOCK_MS + 1000,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000)
  })
}
