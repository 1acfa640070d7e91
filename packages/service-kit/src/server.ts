import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from './config.js'
import { flushLogs } from './logger.js'

export interface ServerOptions<C extends { HOST: string, PORT: number }> {
  name: string
  loadConfig: (env: NodeJS.ProcessEnv) => C
  buildApp: (config: C) => Promise<FastifyInstance>
  /** How long in-flight requests get to finish after SIGTERM. */
  gracePeriodMs?: number
}

/**
 * The whole of a service's `server.ts`: validate the environment once (a bad
 * setting prints one line and exits 1), build the app, listen, and close
 * gracefully on SIGTERM/SIGINT, or when a supervising parent goes away.
 */
export async function runServer<C extends { HOST: string, PORT: number }> (options: ServerOptions<C>): Promise<FastifyInstance> {
  let config: C
  try {
    config = options.loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${options.name}: invalid configuration: ${error.message}\n`)
      process.exit(1)
    }
    throw error
  }

  const app = await options.buildApp(config)
  // A response finished after shutdown began closes its connection: a
  // keep-alive client must not hold the process open past the grace period.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  const closer = closeWithGrace({ delay: options.gracePeriodMs ?? 10_000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an unexpected error')
    else app.log.info({ signal }, 'closing')
    await app.close()
    // Access lines are buffered: the last requests' lines reach stdout before the process exits.
    await flushLogs(app.log)
  })
  // A supervisor (the root `start`) talks to us over IPC; if it dies without
  // forwarding a signal, the closed channel is our cue to stop cleanly.
  if (process.send !== undefined) {
    process.once('disconnect', () => { closer.close() })
  }

  try {
    await app.listen({ host: config.HOST, port: config.PORT })
  } catch (error) {
    app.log.error({ err: error }, 'could not listen')
    closer.uninstall()
    await app.close()
    process.exit(1)
  }
  return app
}
