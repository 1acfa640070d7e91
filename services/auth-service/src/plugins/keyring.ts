import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Keyring, type KeyringOptions } from '../core/keys/keyring.js'

declare module 'fastify' {
  interface FastifyInstance {
    keyring: Keyring
  }
}

/** Decorates `app.keyring`, loaded once the app is ready and kept fresh until it closes. */
export const keyringPlugin = fp(async function keyring (app: FastifyInstance, opts: KeyringOptions) {
  const keyring = new Keyring(app.redis, opts, app.log)
  app.decorate('keyring', keyring)

  if (app.hasDecorator('metrics')) {
    // Computed at scrape time, so it follows the clock rather than the last reload.
    // Duck-typed (name, help, type, get) to spare this package a prom-client dependency of its own.
    const name = 'baton_auth_signing_keys'
    const help = 'Signing keys held, by state (operator-supplied keys after the first: published)'
    app.metrics.registerMetric({
      name,
      help,
      type: 'gauge',
      // Nothing to reset: every scrape recounts.
      reset: () => {},
      get: async () => {
        const counts = new Map<string, number>([['pending', 0], ['active', 0], ['retiring', 0], ['retired', 0]])
        for (const key of keyring.states()) counts.set(key.state, (counts.get(key.state) ?? 0) + 1)
        return { name, help, type: 'gauge', aggregator: 'sum', values: [...counts].map(([state, value]) => ({ labels: { state }, value })) }
      }
    } as unknown as Parameters<typeof app.metrics.registerMetric>[0])
  }

  app.addReadinessCheck('keys', () => keyring.ready() ? undefined : 'signing keys not loaded')
  app.addHook('onReady', async () => { await keyring.start() })
  app.addHook('onClose', async () => { keyring.close() })
}, { name: 'baton-keyring', fastify: '5.x', dependencies: ['baton-redis', 'baton-health'] })
