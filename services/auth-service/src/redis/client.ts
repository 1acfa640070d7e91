/**
 * The Redis client the stores are given: one server, a Sentinel-watched
 * master or a Redis Cluster. The domain names it through here, never
 * through the service kit that creates it.
 */
export type { RedisClient } from '@baton/service-kit'
export { isClusterClient } from '@baton/service-kit'
