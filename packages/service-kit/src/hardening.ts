import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BatonError } from '@baton/tokens'

// Names that reach an object's prototype if a body is ever merged into an
// object. Nothing here merges bodies, but a 400 keeps it so for any code that
// might, and it is what a scanner probing for pollution should be told.
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'prototype'] as const

/** Every response, errors and 404s included, says its content type is the whole truth. */
export const NOSNIFF: Readonly<Record<string, string>> = { 'x-content-type-options': 'nosniff' }

/**
 * What every Baton service does to every request, whatever the route:
 * `X-Content-Type-Options: nosniff` on each response (so no browser runs an
 * error body that echoes input as HTML or script), and a 400 for a JSON or
 * form body with a member named `__proto__`, `constructor` or `prototype`
 * (secure-json-parse refuses only `__proto__` and `constructor.prototype`,
 * and the form parser none of them).
 */
export const hardeningPlugin = fp(async function hardening (app: FastifyInstance) {
  // onSend, not onRequest: replies Fastify makes before any route hook runs
  // (a URL it cannot decode, a 404) pass here too. Callback hooks: no promise per response.
  app.addHook('onSend', (_request, reply, payload, done) => {
    reply.header('x-content-type-options', 'nosniff')
    done(null, payload)
  })
  app.addHook('preValidation', (request, _reply, done) => {
    const body = request.body
    if (typeof body === 'object' && body !== null && PROTOTYPE_NAMES.some((name) => Object.hasOwn(body, name))) {
      done(new BatonError('BATON_INVALID_REQUEST', 'the request body must not name __proto__, constructor or prototype'))
      return
    }
    done()
  })
}, { name: 'baton-hardening', fastify: '5.x' })

/**
 * Fastify's `frameworkErrors`, for a URL it cannot decode (400) or a path
 * parameter over its length limit (414): Fastify answers those before any
 * hook runs, so the header and Baton's error body are set here.
 */
export function frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400
  reply.code(status).headers({ ...NOSNIFF, 'cache-control': 'no-store' })
    .send({ error: 'invalid_request', error_description: error.code === 'FST_ERR_BAD_URL' ? 'the URL is not valid' : 'the request is not valid' })
}

const CLIENT_ERRORS: Readonly<Record<string, { status: number, description: string }>> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, description: 'the request took too long to arrive' },
  HPE_HEADER_OVERFLOW: { status: 431, description: 'the request headers are too large' }
}

/**
 * Fastify's `clientErrorHandler` for what Node's HTTP parser refuses before
 * Fastify sees a request (headers over the limit, a malformed request line, a
 * timeout): the same statuses as Fastify's own, with Baton's error body and
 * `X-Content-Type-Options`, which the default answer lacks.
 */
export function clientErrorHandler (this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset or destroyed socket has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const { status, description } = CLIENT_ERRORS[error.code ?? ''] ?? { status: 400, description: 'the request is not valid HTTP' }
  this.log.trace({ err: error }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify({ error: 'invalid_request', error_description: description })
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      'X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n' + body)
  }
  socket.destroy(error)
}
