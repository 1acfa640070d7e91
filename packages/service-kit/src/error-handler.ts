import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BatonError, bearerChallenge, renderError, type ErrorCode } from '@baton/tokens'

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BATON_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'BATON_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BATON_INVALID_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BATON_INVALID_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BATON_INVALID_REQUEST',
  FST_ERR_VALIDATION: 'BATON_INVALID_REQUEST'
}

/** Turns whatever was thrown into a coded error; unknown failures become a masked 500. */
export function toBatonError (error: unknown): BatonError {
  if (error instanceof BatonError) return error
  const fastifyError = error as Partial<FastifyError>
  const mapped = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code]
  if (mapped !== undefined) {
    return new BatonError(mapped, describeFastifyError(fastifyError), { cause: error })
  }
  if (fastifyError.validation !== undefined) {
    return new BatonError('BATON_INVALID_REQUEST', describeFastifyError(fastifyError), { cause: error })
  }
  const status = fastifyError.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new BatonError(status === 413 ? 'BATON_PAYLOAD_TOO_LARGE' : status === 415 ? 'BATON_UNSUPPORTED_MEDIA_TYPE' : 'BATON_INVALID_REQUEST', 'the request is not valid', { cause: error })
  }
  return new BatonError('BATON_INTERNAL', 'internal error', { cause: error })
}

function describeFastifyError (error: Partial<FastifyError>): string {
  if (error.validation !== undefined && error.validation.length > 0) {
    const first = error.validation[0]!
    const where = `${error.validationContext ?? 'request'}${first.instancePath === '' ? '' : first.instancePath.replaceAll('/', '.')}`
    return `${where} ${first.message ?? 'is not valid'}`
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return 'request body is too large'
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return 'unsupported content type'
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return 'request body is empty'
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return 'request body is not valid JSON'
    default: return 'the request is not valid'
  }
}

export { bearerChallenge }

export function sendError (reply: FastifyReply, error: BatonError, realm: string): FastifyReply {
  const { status, headers, body } = renderError(error, realm)
  return reply.code(status).headers(headers).send(body)
}

/**
 * One error handler and one not-found handler for a service: coded errors go
 * out in the RFC 6749 / RFC 6750 wire format; anything unexpected is logged
 * and masked as a 500.
 */
export const errorHandlerPlugin = fp(async function errorHandler (app: FastifyInstance, opts: { realm?: string }) {
  const realm = opts.realm ?? 'baton'
  app.setErrorHandler(function handleError (error: unknown, request: FastifyRequest, reply: FastifyReply) {
    const batonError = toBatonError(error)
    if (batonError.statusCode >= 500) {
      request.log.error({ err: error, code: batonError.code }, 'request failed')
    } else {
      request.log.info({ code: batonError.code, statusCode: batonError.statusCode }, batonError.message)
    }
    return sendError(reply, batonError, realm)
  })
  app.setNotFoundHandler(function notFound (request, reply) {
    return sendError(reply, new BatonError('BATON_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`.slice(0, 200)), realm)
  })
}, { name: 'baton-error-handler', fastify: '5.x' })
