import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyServerOptions, FastifyRequest } from 'fastify'

// Everything that can carry a credential, wherever pino might meet it: request
// and response headers, parsed bodies and any object a handler logs.
const SECRET_FIELDS = [
  'password', 'current_password', 'new_password', 'client_secret',
  'access_token', 'refresh_token', 'token', 'assertion', 'cookie', 'authorization'
]

export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  ...SECRET_FIELDS.map((field) => `body.${field}`),
  ...SECRET_FIELDS.map((field) => `req.body.${field}`)
]

/**
 * Keeps the path and the parameter names of a URL but none of its values: a
 * client that puts a token in a query string must not get it into the logs.
 */
export function redactUrl (url: string): string {
  const queryStart = url.indexOf('?')
  if (queryStart === -1) return url
  const names = url.slice(queryStart + 1).split('&').map((pair) => {
    const name = pair.split('=')[0] ?? ''
    return `${name.slice(0, 64)}=[redacted]`
  })
  return `${url.slice(0, queryStart)}?${names.join('&')}`
}

/** pino options for a Baton service: redaction on, request lines without secrets. */
export function loggerOptions (level: string): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    serializers: {
      req (request: FastifyRequest) {
        return {
          method: request.method,
          url: redactUrl(request.url),
          remoteAddress: request.ip,
          userAgent: request.headers['user-agent']
        }
      }
    }
  }
}

/**
 * One log line per answered request, in place of Fastify's two (register it
 * with the Fastify option `disableRequestLogging: true`). Every log call pays
 * for serializing and redaction, and under load the request lines were half
 * of a verification's cost: the arrival line moves to `debug`, the
 * completion line, which now carries the request too, stays at `info`.
 * A route's `logLevel` still silences both.
 *
 * @example
 * const app = Fastify({ logger: loggerOptions('info'), disableRequestLogging: true })
 * await app.register(accessLogPlugin)
 */
export const accessLogPlugin = fp(async function accessLog (app: FastifyInstance) {
  if (app.log.level === 'debug' || app.log.level === 'trace') {
    app.addHook('onRequest', async (request) => { request.log.debug({ req: request }, 'incoming request') })
  }
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  })
}, { name: 'baton-access-log', fastify: '5.x' })
