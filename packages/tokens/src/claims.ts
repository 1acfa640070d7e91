import { Type, type Static } from 'typebox'

/** The JWS `typ` of Baton access tokens (RFC 9068). */
export const ACCESS_TOKEN_TYP = 'at+jwt'

/** Signature algorithms Baton issues and verifiers accept; nothing else. */
export const ACCESS_TOKEN_ALGORITHMS = ['EdDSA', 'ES256'] as const
export type AccessTokenAlgorithm = typeof ACCESS_TOKEN_ALGORITHMS[number]

/** Claims a verifier insists on before it looks at anything else. */
export const REQUIRED_ACCESS_TOKEN_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti'] as const

export const AccessTokenClaimsSchema = Type.Object({
  iss: Type.String(),
  sub: Type.String(),
  aud: Type.Union([Type.String(), Type.Array(Type.String())], {
    // No minItems: with it, TypeBox's Static type stops Fastify's declaration merging in typed routes. Verifiers refuse [] anyway.
    description: 'The audience: one string, or a non-empty array of them that contains the verifier\'s (RFC 7519 §4.1.3)'
  }),
  exp: Type.Integer(),
  iat: Type.Integer(),
  jti: Type.String(),
  client_id: Type.String(),
  scope: Type.String(),
  sid: Type.Optional(Type.String({ description: 'The session (refresh-token family); absent for client_credentials tokens' })),
  username: Type.Optional(Type.String()),
  cnf: Type.Optional(Type.Object({
    jkt: Type.String({ description: 'The RFC 7638 SHA-256 thumbprint of the key the token is bound to (RFC 9449 §6.1)' })
  }, { description: 'Present on DPoP-bound tokens: only a request with a proof signed by that key may use the token' }))
})
/** RFC 9068 claims of a Baton access token, plus `sid`, `username` and, for a DPoP-bound token, `cnf`. */
export type AccessTokenClaims = Static<typeof AccessTokenClaimsSchema>

export const TokenResponseSchema = Type.Object({
  access_token: Type.String(),
  token_type: Type.Union([Type.Literal('Bearer'), Type.Literal('DPoP')], {
    description: '`DPoP` when the request carried a DPoP proof: the access token is bound to its key (`cnf.jkt`, RFC 9449 §5) and must be sent as `Authorization: DPoP` with a proof; else `Bearer`'
  }),
  expires_in: Type.Integer(),
  refresh_token: Type.Optional(Type.String()),
  scope: Type.String(),
  device_token: Type.Optional(Type.String({
    description: 'Password grant only: proof that this client has logged in to the account. Sent back as `device_token` at its next password grants, it keeps the client\'s own budget of failed logins, which failures of other clients cannot lock.'
  }))
})
/** RFC 6749 §5.1 successful token response. */
export type TokenResponse = Static<typeof TokenResponseSchema>

export const ErrorResponseSchema = Type.Object({
  // Absent only on a bare RFC 6750 challenge (no credentials were sent).
  error: Type.Optional(Type.String()),
  error_description: Type.Optional(Type.String())
})
/** RFC 6749 §5.2 / RFC 6750 §3 error body. */
export type ErrorResponse = Static<typeof ErrorResponseSchema>
