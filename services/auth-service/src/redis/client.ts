/**
 * The Redis client the stores are given: one server, a Sentinel-watched
 * master or a Redis Cluster. The domain names it through here; the service
 * kit's Redis module is free of Fastify, so the domain loads none.
 */
export type { RedisClient } from '@baton/service-kit/redis'
export { isClusterClient } from '@baton/service-kit/redis'
