import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { RevocationFeed } from '@baton/verifier/feed'

export interface RevocationFeedPluginOptions {
  /** Started when the app is ready, closed with it. */
  feed: RevocationFeed
}

/**
 * Wires a revocation-feed follower into the service: its metrics, a
 * readiness check that holds until the first catch-up, and its lifetime.
 * Readiness does not flip when Redis goes away later: the service keeps
 * refusing what it already knows.
 */
export const revocationFeedPlugin = fp(async function revocationFeed (app: FastifyInstance, { feed }: RevocationFeedPluginOptions) {
  const registers = [app.metrics]
  const lag = new Histogram({
    name: 'baton_resource_revocation_feed_lag_seconds',
    help: 'Time from a revocation at the auth-service to this verifier applying it (catch-up after an outage included)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'baton_resource_revocation_feed_entries',
    help: 'Revoked sessions, access tokens and signing keys held in memory, by kind',
    labelNames: ['kind'] as const,
    registers,
    collect () {
      feed.sweep()
      this.set({ kind: 'session' }, feed.list.sessions)
      this.set({ kind: 'token' }, feed.list.tokens)
      this.set({ kind: 'key' }, feed.list.keys)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'baton_resource_revocation_feed_connected',
    help: '1 while the revocation feed is connected and caught up, else 0',
    registers,
    collect () { this.set(feed.connected ? 1 : 0) }
  })
  const gaps = new Counter({
    name: 'baton_resource_revocation_feed_gaps_total',
    help: 'Times revocation feed entries were lost before this verifier read them, by reason',
    labelNames: ['reason'] as const,
    registers
  })
  feed.on('applied', (_event, lagMs) => { lag.observe(lagMs / 1000) })
  feed.on('gap', (reason) => { gaps.inc({ reason }) })

  app.addReadinessCheck('revocation_feed', () => feed.caughtUp ? undefined : 'the revocation feed has not caught up yet')
  app.addHook('onReady', async () => { feed.start() })
  app.addHook('onClose', async () => { await feed.close() })
}, { name: 'baton-revocation-feed', fastify: '5.x', dependencies: ['baton-health', 'baton-metrics'] })
