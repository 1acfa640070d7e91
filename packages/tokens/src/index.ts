export { parseDuration } from './duration.js'
export { parseScope, formatScope, isSubsetOf, scopeClaimIncludes } from './scope.js'
export {
  ACCESS_TOKEN_TYP,
  ACCESS_TOKEN_ALGORITHMS,
  REQUIRED_ACCESS_TOKEN_CLAIMS,
  AccessTokenClaimsSchema,
  TokenResponseSchema,
  ErrorResponseSchema
} from './claims.js'
export type { AccessTokenAlgorithm, AccessTokenClaims, TokenResponse, ErrorResponse } from './claims.js'
export { ERRORS, BatonError, isBatonError, isBearerError, bearerChallenge, quoteAuthParam, renderError } from './errors.js'
export type { ErrorCode, RenderedError } from './errors.js'
export { encodeRevocationEvent, decodeRevocationEvent, revocationStreamKey } from './revocation-event.js'
export type { RevocationEvent } from './revocation-event.js'
