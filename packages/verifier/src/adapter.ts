// What every adapter does with a request, written once.
import type { AccessTokenClaims } from '@baton/tokens'
import { checkScopeNames, checkScopes, createVerifier, type Verifier, type VerifierOptions } from './verifier.js'

/** An adapter's options: the verifier's own, or a verifier made elsewhere (then the caller closes it); `realm` names the challenge's realm (default `baton`). */
export type AdapterOptions = (VerifierOptions | { verifier: Verifier }) & { realm?: string }

export function adapterVerifier (options: AdapterOptions, defaults: Partial<VerifierOptions> = {}): { verifier: Verifier, owned: boolean, realm: string } {
  const realm = options.realm ?? 'baton'
  if ('verifier' in options) return { verifier: options.verifier, owned: false, realm }
  const { realm: _realm, ...verifierOptions } = options
  return { verifier: createVerifier({ ...defaults, ...verifierOptions }), owned: true, realm }
}

/** The scopes a `requireScope(...)` names, checked when the route is declared. */
export function requiredScopeList (scopes: readonly string[]): readonly string[] {
  if (scopes.length === 0) throw new Error('requireScope: name at least one scope')
  return checkScopeNames(scopes, 'requireScope')
}

/**
 * Authenticates one request and calls `admit` with the claims or `refuse`
 * with the error, synchronously when the verifier can answer at once. With
 * `scopes`, a request an earlier hook authenticated (`existing`) only has
 * its scopes checked.
 */
export function authenticateRequest (
  verifier: Verifier,
  existing: AccessTokenClaims | null | undefined,
  authorization: string | string[] | undefined,
  scopes: readonly string[] | undefined,
  admit: (claims: AccessTokenClaims) => void,
  refuse: (error: unknown) => void
): void {
  let claims: AccessTokenClaims | Promise<AccessTokenClaims>
  try {
    if (existing !== null && existing !== undefined && scopes !== undefined) {
      checkScopes(existing, scopes)
      claims = existing
    } else {
      claims = verifier.authenticate(authorization, scopes)
    }
  } catch (error) {
    refuse(error)
    return
  }
  if (claims instanceof Promise) claims.then(admit, refuse)
  else admit(claims)
}
