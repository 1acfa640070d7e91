import { BatonError } from '@baton/tokens'
import { normalizeUsername } from './user-store.js'

/** NIST SP 800-63B: length is what counts (the route schemas bound it); no composition rules, only these two. */
export function checkPasswordStrength (username: string, password: string): void {
  if (normalizeUsername(password).includes(normalizeUsername(username))) {
    throw new BatonError('BATON_WEAK_PASSWORD', 'password must not contain the username')
  }
  if (new Set(password).size < 3) {
    throw new BatonError('BATON_WEAK_PASSWORD', 'password is too repetitive')
  }
}
