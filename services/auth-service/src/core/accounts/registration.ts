import { BatonError, isBatonError } from '@baton/tokens'
import type { Events } from '../events.js'
import type { PasswordHasher } from './password-hasher.js'
import { checkPasswordStrength } from './password-policy.js'
import { admitted, type RateLimiter } from './rate-limits.js'
import type { UserRecord, UserStore } from './user-store.js'
import { displayUsername, usernameProblem } from './username.js'

export interface RegistrationDeps {
  users: UserStore
  passwords: PasswordHasher
  limits: RateLimiter
}

export interface NewAccount {
  username: string
  password: string
  /** The scopes the user is allowed (DEFAULT_SCOPES). */
  scopes: readonly string[]
}

/**
 * Creates an account from a client at `ip`. The name must be one RFC 8265
 * and UTS #39 accept, so that no name can be mistaken for another; the
 * attempt is counted once the input holds and before the hash, so a
 * malformed request costs no registration and a refused one no hash.
 */
export async function registerUser (deps: RegistrationDeps, input: NewAccount, ip: string, events: Events): Promise<UserRecord> {
  const problem = usernameProblem(input.username)
  if (problem !== undefined) throw new BatonError('BATON_INVALID_REQUEST', problem)
  const username = displayUsername(input.username)
  checkPasswordStrength(username, input.password)
  await admitted(deps.limits.admitRegistration(ip), 'registration', events)
  const passwordHash = await deps.passwords.hash(input.password)
  let user
  try {
    user = await deps.users.create({ username, passwordHash, scopes: input.scopes })
  } catch (error) {
    // Registration answers whether a name is taken: trying many names is probing, and spends the IP's failures.
    if (isBatonError(error) && error.code === 'BATON_USERNAME_TAKEN') await deps.limits.registrationFailed(ip)
    throw error
  }
  events.audit('user.registered', { user: user.id })
  return user
}
