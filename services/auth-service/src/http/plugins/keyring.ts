import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Keyring, type KeyringOptions } from '../../core/keys/keyring.js'
import type { AuthMetrics } from '../../observability/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    keyring: Keyring
  }
}

/** Decorates `app.keyring`, loaded once the app is ready and kept fresh until it closes. */
export const keyringPlugin = fp(async function keyring (app: FastifyInstance, opts: KeyringOptions & { metrics: AuthMetrics }) {
  const { metrics, ...options } = opts
  const keyring = new Keyring(app.redis, options, app.log)
  app.decorate('keyring', keyring)
  metrics.signingKeys(() => keyring.states())

  app.addReadinessCheck('keys', () => keyring.ready() ? undefined : 'signing keys not loaded')
  app.addHook('onReady', async () => { await keyring.start() })
  app.addHook('onClose', async () => { keyring.close() })
}, { name: 'baton-keyring', fastify: '5.x', dependencies: ['baton-redis', 'baton-health'] })
