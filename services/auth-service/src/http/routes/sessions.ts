import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { ACCESS_TOKEN_SECURITY, eventsOf, noStore, requireUserSession } from '../route-helpers.js'
import { clearRefreshCookie } from '../refresh-cookie.js'

const SessionSchema = Type.Object({
  id: Type.String({ description: 'The `sid` of this session\'s access tokens' }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({ format: 'date-time' }),
  client_id: Type.String(),
  user_agent: Type.String(),
  ip: Type.String(),
  current: Type.Boolean({ description: 'True for the session of the token that asked' })
})

const Errors = { '4xx': ErrorResponseSchema, 503: ErrorResponseSchema }

/**
 * Ending the caller's own session from a cookie-mode page is a logout: the
 * cookie, which can never refresh again, goes too, as it does after
 * `/oauth/revoke`, rather than lingering until the next refresh fails.
 */
function endedOwnSession (request: FastifyRequest, reply: FastifyReply): void {
  const client = request.server.auth.clients.get(request.auth.client_id)
  if (client?.refreshTokenDelivery === 'cookie') clearRefreshCookie(reply, client)
}

export default async function sessionRoutes (app: FastifyInstance): Promise<void> {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  server.addHook('onRequest', app.authenticate)
  server.addHook('preHandler', requireUserSession)
  server.addHook('onSend', noStore)

  server.get('/sessions', {
    schema: {
      description: 'The caller\'s live sessions',
      tags: ['sessions'],
      security: ACCESS_TOKEN_SECURITY,
      response: { 200: Type.Object({ sessions: Type.Array(SessionSchema) }), ...Errors }
    }
  }, async (request) => {
    const sessions = await app.auth.sessions.list(request.auth.sub)
    return { sessions: sessions.map((session) => ({ ...session, current: session.id === request.auth.sid })) }
  })

  server.delete('/sessions/:id', {
    schema: {
      description: 'End one of the caller\'s sessions. Ending its own session from a cookie-mode client clears the refresh-token cookie.',
      tags: ['sessions'],
      security: ACCESS_TOKEN_SECURITY,
      params: Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{22}$' }) }),
      response: { 204: Type.Null(), ...Errors }
    }
  }, async (request, reply) => {
    if (!await app.auth.sessions.revoke(request.auth.sub, request.params.id)) {
      throw new BatonError('BATON_NOT_FOUND', 'no such session')
    }
    eventsOf(request).audit('session.revoked', { user: request.auth.sub, sid: request.params.id, client_id: request.auth.client_id, reason: 'logout' })
    if (request.params.id === request.auth.sid) endedOwnSession(request, reply)
    return await reply.code(204).send(null)
  })

  server.delete('/sessions', {
    schema: {
      description: 'End all of the caller\'s sessions ("log out everywhere"). A login whose password was verified before this creates no session after it (`400 invalid_grant`). From a cookie-mode client, the answer clears the refresh-token cookie.',
      tags: ['sessions'],
      security: ACCESS_TOKEN_SECURITY,
      response: { 204: Type.Null(), ...Errors }
    }
  }, async (request, reply) => {
    const ended = await app.auth.sessions.revokeAll(request.auth.sub)
    const events = eventsOf(request)
    for (const sid of ended) events.audit('session.revoked', { user: request.auth.sub, sid, client_id: request.auth.client_id, reason: 'logout_everywhere' })
    endedOwnSession(request, reply)
    return await reply.code(204).send(null)
  })
}
