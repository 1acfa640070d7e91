import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { RedisRevocationPublisher, type RevocationPublisher, type RevocationPublisherOptions } from '../../core/revocation-publisher.js'
import type { AuthMetrics } from '../../observability/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    revocationFeed: RevocationPublisher
  }
}

/** Decorates `app.revocationFeed`, whose appends the metrics count. */
export const revocationFeedPlugin = fp(async function revocationFeed (app: FastifyInstance, opts: RevocationPublisherOptions & { metrics: AuthMetrics }) {
  const { metrics, ...options } = opts
  const publisher = new RedisRevocationPublisher(app.redis, options, app.log, (outcome) => { metrics.revocationFeed(outcome) })
  app.decorate('revocationFeed', publisher)
  app.addHook('onClose', async () => { publisher.close() })
}, { name: 'baton-revocation-feed', fastify: '5.x', dependencies: ['baton-redis'] })
