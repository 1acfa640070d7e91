// The framework-free core. Adapters: '@baton/verifier/fastify', '/express',
// '/node'; the revocation-feed follower: '@baton/verifier/feed'; the DPoP
// proof check the token endpoint shares: '@baton/verifier/dpop'.
export { createVerifier, checkScopes, MAX_CACHE_BYTES } from './verifier.js'
export type { Verifier, VerifierOptions, DpopVerifierOptions, RequestInfo } from './verifier.js'
export { extractBearerToken } from './bearer.js'
// renderError as @baton/tokens has it, plus the DPoP challenges of a verifier that takes DPoP.
export { VerifierError, REFUSALS, renderError } from './errors.js'
export type { RefusalReason } from './errors.js'
export { hasDuplicateMembers, audienceAccepted } from './checks.js'
export { createStaticKeySource } from './key-source.js'
export type { KeySource, StaticKey, PublicKeyInput } from './key-source.js'
export { createJwksKeySource } from './jwks-key-source.js'
export type { JwksKeySource, JwksKeySourceOptions } from './jwks-key-source.js'
export type { Logger } from './logger.js'
export { BatonError, isBatonError } from '@baton/tokens'
export type { AccessTokenClaims, AccessTokenAlgorithm, RenderedError } from '@baton/tokens'
