import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { changePassword } from '../../core/accounts/password-change.js'
import { registerUser } from '../../core/accounts/registration.js'
import { ACCESS_TOKEN_SECURITY, eventsOf, requestContext, requireUserSession } from '../route-helpers.js'

// Letters (with their combining marks, which many scripts cannot be written
// without) and digits of any script plus . _ @ + -: room for e-mail addresses,
// nothing that could be mistaken for syntax in logs, keys or headers.
const USERNAME_PATTERN = '^[\\p{L}\\p{M}\\p{N}._@+-]{3,64}$'

// NIST SP 800-63B: length is what counts; no composition rules.
const Password = Type.String({ minLength: 8, maxLength: 128 })

const RegisterSchema = Type.Object({
  username: Type.String({ minLength: 3, maxLength: 64, pattern: USERNAME_PATTERN }),
  password: Password
})

const ChangePasswordSchema = Type.Object({
  current_password: Type.String({ minLength: 1, maxLength: 128 }),
  new_password: Password,
  keep_current_session: Type.Optional(Type.Boolean())
})

// A cross-site form can post urlencoded bodies without a CORS preflight, so any
// page could make its visitors register accounts; JSON it cannot send unasked.
async function jsonOnly (request: FastifyRequest): Promise<void> {
  const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/json') throw new BatonError('BATON_UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json')
}

export default async function userRoutes (app: FastifyInstance): Promise<void> {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.post('/users', {
    onRequest: jsonOnly,
    schema: {
      description: 'Register a user; the body must be `application/json` (`415` otherwise). Names are compared as RFC 8265 UsernameCaseMapped forms (width, case folding: `Straße` is `STRASSE`): `409` if that form is taken. `400` for a name RFC 8265 refuses, or one that mixes scripts (UTS #39 highly restrictive: a Cyrillic `а` in a Latin name). Rate limited per client IP, with a registration budget of its own (`RATE_LIMIT_REGISTRATIONS` per `RATE_LIMIT_REGISTRATION_WINDOW`): `429` with `Retry-After`; a taken name counts as a failed attempt.',
      tags: ['users'],
      consumes: ['application/json'],
      body: RegisterSchema,
      response: {
        201: Type.Object({ id: Type.String(), username: Type.String() }),
        '4xx': ErrorResponseSchema,
        503: ErrorResponseSchema
      }
    }
  }, async (request, reply) => {
    const user = await registerUser(app.auth, { ...request.body, scopes: app.config.DEFAULT_SCOPES }, request.ip, eventsOf(request))
    return await reply.code(201).send({ id: user.id, username: user.username })
  })

  server.post('/users/me/password', {
    onRequest: app.authenticate,
    preHandler: requireUserSession,
    schema: {
      description: 'Change the caller\'s password; ends every other session, and the current one unless kept. A login verified with the old password creates no session from then on (`400 invalid_grant`), however long its password check took.',
      tags: ['users'],
      security: ACCESS_TOKEN_SECURITY,
      body: ChangePasswordSchema,
      response: { 204: Type.Null(), '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    const { current_password: currentPassword, new_password: newPassword, keep_current_session: keepSession = false } = request.body
    await changePassword(app.auth, request.auth.sub, request.auth.sid, { currentPassword, newPassword, keepSession }, requestContext(request, request.auth.client_id))
    return await reply.code(204).send(null)
  })
}
