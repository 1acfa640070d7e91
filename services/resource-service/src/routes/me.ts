import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { ErrorResponseSchema } from '@baton/tokens'

export const MeSchema = Type.Object({
  sub: Type.String({ description: 'The user the token was issued to' }),
  username: Type.Union([Type.String(), Type.Null()], { description: 'null when the token carries no username' }),
  scope: Type.String({ description: 'Space-delimited scopes granted to the token' }),
  sid: Type.Union([Type.String(), Type.Null()], { description: 'The session (refresh-token family); null for tokens without one' }),
  exp: Type.Integer({ description: 'When the token expires, in seconds since the epoch' })
})
export type Me = Static<typeof MeSchema>

/** `GET /me`: who the presented access token speaks for. Expects an authenticating hook in its context. */
export default async function meRoutes (app: FastifyInstance): Promise<void> {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/me', {
    schema: {
      description: 'The caller, as the access token describes them',
      tags: ['resource'],
      security: [{ bearerAuth: [] }, { dpopAuth: [] }],
      response: { 200: MeSchema, 400: ErrorResponseSchema, 401: ErrorResponseSchema }
    }
  }, async (request): Promise<Me> => {
    const { sub, username, scope, sid, exp } = request.auth
    return { sub, username: username ?? null, scope, sid: sid ?? null, exp }
  })
}
