// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/
const MAX_SCOPES = 64

/**
 * Splits a space-delimited scope string into a de-duplicated list, or returns
 * `undefined` when it is not a valid RFC 6749 scope.
 *
 * @example parseScope('profile reports:read') // ['profile', 'reports:read']
 */
export function parseScope (scope: string): string[] | undefined {
  const parts = scope.split(' ').filter((part) => part !== '')
  if (parts.length === 0 || parts.length > MAX_SCOPES) return undefined
  for (const part of parts) {
    if (!SCOPE_TOKEN.test(part)) return undefined
  }
  return [...new Set(parts)]
}

/** Joins scopes the way they travel in tokens and responses. */
export function formatScope (scopes: readonly string[]): string {
  return scopes.join(' ')
}

/** True when every requested scope is among the allowed ones. */
export function isSubsetOf (requested: readonly string[], allowed: readonly string[]): boolean {
  const allowedSet = new Set(allowed)
  return requested.every((scope) => allowedSet.has(scope))
}

/** True when a space-delimited scope claim grants `needed`. */
export function scopeClaimIncludes (scopeClaim: unknown, needed: string): boolean {
  return typeof scopeClaim === 'string' && scopeClaim.split(' ').includes(needed)
}
