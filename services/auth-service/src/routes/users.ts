import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema, isBatonError } from '@baton/tokens'
import { admitted, audit } from '../audit.js'
import { normalizeUsername } from '../core/accounts/user-store.js'
import { displayUsername, usernameProblem } from '../core/accounts/username.js'
import { requireUserSession } from './sessions.js'

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

function checkPasswordStrength (username: string, password: string): void {
  if (normalizeUsername(password).includes(normalizeUsername(username))) {
    throw new BatonError('BATON_WEAK_PASSWORD', 'password must not contain the username')
  }
  if (new Set(password).size < 3) {
    throw new BatonError('BATON_WEAK_PASSWORD', 'password is too repetitive')
  }
}

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
    const { password } = request.body
    // RFC 8265 and UTS #39: no name that another could be mistaken for.
    const problem = usernameProblem(request.body.username)
    if (problem !== undefined) throw new BatonError('BATON_INVALID_REQUEST', problem)
    const username = displayUsername(request.body.username)
    checkPasswordStrength(username, password)
    // Counted once the input holds and before the hash: a malformed request costs no registration, a refused one no hash.
    await admitted(request, 'registration.limited', app.limits.admitRegistration(request.ip))
    const passwordHash = await app.passwords.hash(password)
    let user
    try {
      user = await app.users.create({ username, passwordHash, scopes: app.config.DEFAULT_SCOPES })
    } catch (error) {
      // Registration answers whether a name is taken: trying many names is probing, and spends the IP's failures.
      if (isBatonError(error) && error.code === 'BATON_USERNAME_TAKEN') await app.limits.registrationFailed(request.ip)
      throw error
    }
    audit(request, 'user.registered', { user: user.id })
    return await reply.code(201).send({ id: user.id, username: user.username })
  })

  server.post('/users/me/password', {
    onRequest: app.authenticate,
    preHandler: requireUserSession,
    schema: {
      description: 'Change the caller\'s password; ends every other session, and the current one unless kept. A login verified with the old password creates no session from then on (`400 invalid_grant`), however long its password check took.',
      tags: ['users'],
      security: [{ bearerAuth: [] }],
      body: ChangePasswordSchema,
      response: { 204: Type.Null(), '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }
    }
  }, async (request, reply) => {
    const { sub, sid } = request.auth
    const { current_password: currentPassword, new_password: newPassword, keep_current_session: keep = false } = request.body
    const user = await app.users.findById(sub)
    if (user === undefined) throw new BatonError('BATON_INVALID_TOKEN', 'the user no longer exists')
    // A stolen access token must not become a way to guess the password: the login limits apply.
    const attempt = await admitted(request, 'login.locked', app.limits.admitLogin(request.ip, user.username), { user: user.id, client_id: request.auth.client_id })
    if (!await app.passwords.verify(user.passwordHash, currentPassword)) {
      audit(request, 'password.change_failed', { user: user.id, sid, client_id: request.auth.client_id, reason: 'wrong_password' })
      throw new BatonError('BATON_INVALID_GRANT', 'current password is not correct')
    }
    await attempt.succeeded()
    checkPasswordStrength(user.username, newPassword)
    const nextHash = await app.passwords.hash(newPassword)
    if (!await app.users.replacePasswordHash(user.id, user.passwordHash, nextHash, app.clock())) {
      throw new BatonError('BATON_INVALID_GRANT', 'the password was changed concurrently; try again')
    }
    const ended = await app.sessions.revokeAll(user.id, keep && sid !== undefined ? sid : '')
    audit(request, 'password.changed', { user: user.id, sid, client_id: request.auth.client_id, sessions_ended: ended.length })
    for (const endedSid of ended) audit(request, 'session.revoked', { user: user.id, sid: endedSid, client_id: request.auth.client_id, reason: 'password_change' })
    return await reply.code(204).send(null)
  })
}
