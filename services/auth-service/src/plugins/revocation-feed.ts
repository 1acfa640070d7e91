import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { counter } from '@baton/service-kit'
import { RedisRevocationPublisher, type RevocationPublisher, type RevocationPublisherOptions } from '../core/revocation-publisher.js'

declare module 'fastify' {
  interface FastifyInstance {
    revocationFeed: RevocationPublisher
  }
}

/** Decorates `app.revocationFeed` and counts `baton_auth_revocation_feed_events_total{outcome}`. */
export const revocationFeedPlugin = fp(async function revocationFeed (app: FastifyInstance, opts: RevocationPublisherOptions) {
  const events = counter(app, 'baton_auth_revocation_feed_events_total',
    'Revocation feed appends: published, failed (given up after retries) and retried attempts', ['outcome'])
  const publisher = new RedisRevocationPublisher(app.redis, opts, app.log, (outcome) => { events.inc({ outcome }) })
  app.decorate('revocationFeed', publisher)
  app.addHook('onClose', async () => { publisher.close() })
}, { name: 'baton-revocation-feed', fastify: '5.x', dependencies: ['baton-redis', 'baton-metrics'] })
