import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { JwksKeySource } from '@baton/verifier'

export interface JwksLoaderOptions {
  source: JwksKeySource
  /** How often a loaded key set is fetched again, so keys the issuer withdrew stop being trusted. */
  refreshIntervalMs: number
  /** First retry delay after a failed fetch; doubles up to `maxRetryDelayMs`. */
  initialRetryDelayMs?: number
  maxRetryDelayMs?: number
}

/**
 * Loads the key set when the app starts and keeps it fresh. The issuer may
 * not be up yet: start-up goes on regardless, `/readyz` answers 503 until the
 * first key set arrives, and fetching is retried in the background with
 * exponential backoff. Owns the source: closing the app closes it.
 */
export const jwksLoaderPlugin = fp(async function jwksLoader (app: FastifyInstance, opts: JwksLoaderOptions) {
  const initialDelay = opts.initialRetryDelayMs ?? 250
  const maxDelay = opts.maxRetryDelayMs ?? 30_000
  let failures = 0
  let timer: NodeJS.Timeout | undefined
  let closed = false

  function schedule (delayMs: number): void {
    if (closed) return
    timer = setTimeout(() => { void load() }, delayMs)
    // The server keeps the process alive; a pending retry alone must not.
    timer.unref()
  }

  async function load (): Promise<void> {
    try {
      await opts.source.refresh()
      failures = 0
      schedule(opts.refreshIntervalMs)
    } catch (error) {
      if (closed) return
      failures += 1
      // Jitter keeps a fleet restarted together from polling the issuer in step.
      const delay = Math.min(maxDelay, initialDelay * 2 ** Math.min(failures - 1, 16)) * (0.8 + Math.random() * 0.4)
      app.log.warn({
        err: { message: (error as Error).message },
        keysLoaded: opts.source.ready(),
        retryInMs: Math.round(delay)
      }, 'key set fetch failed')
      schedule(delay)
    }
  }

  app.addHook('onReady', load)
  app.addHook('onClose', async () => {
    closed = true
    clearTimeout(timer)
    opts.source.close()
  })
}, { name: 'baton-jwks-loader', fastify: '5.x' })
