// What every adapter does with a request, written once.
import type { AccessTokenClaims } from '@baton/tokens'
import { VerifierError } from './errors.js'
import { checkScopeNames, checkScopes, createVerifier, type Verifier, type VerifierOptions } from './verifier.js'

/** What every adapter takes besides the verifier's own options. */
export interface AdapterExtras {
  /** The realm of the `WWW-Authenticate` challenge; default `baton`. */
  realm?: string
  /** Told of every refused request (its `reason`, `status`, `error`), for metrics or logs. */
  onRefused?: (error: VerifierError) => void
}

/** An adapter's options: the verifier's own, or a verifier made elsewhere (then the caller closes it). */
export type AdapterOptions = (VerifierOptions | { verifier: Verifier }) & AdapterExtras

export interface AdapterSetup {
  verifier: Verifier
  /** Whether the adapter made the verifier, and so closes it. */
  owned: boolean
  realm: string
  /** Tells `onRefused` of a refusal; other errors pass silently. */
  noteRefusal: (error: unknown) => void
}

export function adapterVerifier (options: AdapterOptions, defaults: Partial<VerifierOptions> = {}): AdapterSetup {
  const { realm = 'baton', onRefused } = options
  if (onRefused !== undefined && typeof onRefused !== 'function') throw new Error('options.onRefused must be a function')
  const noteRefusal = onRefused === undefined ? () => {} : (error: unknown) => { if (error instanceof VerifierError) onRefused(error) }
  if ('verifier' in options) return { verifier: options.verifier, owned: false, realm, noteRefusal }
  const { realm: _realm, onRefused: _onRefused, ...verifierOptions } = options
  return { verifier: createVerifier({ ...defaults, ...verifierOptions }), owned: true, realm, noteRefusal }
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
