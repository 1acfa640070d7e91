import { BatonError } from '@baton/tokens'
import type { RequestContext } from '../request-context.js'
import type { SessionStore } from '../sessions/session-store.js'
import type { PasswordHasher } from './password-hasher.js'
import { checkPasswordStrength } from './password-policy.js'
import { admitted, type RateLimiter } from './rate-limits.js'
import type { UserStore } from './user-store.js'

export interface PasswordChangeDeps {
  users: UserStore
  passwords: PasswordHasher
  limits: RateLimiter
  sessions: SessionStore
  clock: () => number
}

export interface PasswordChange {
  currentPassword: string
  newPassword: string
  /** Keep the session `sid` (the caller's own); every other session ends. */
  keepSession: boolean
}

/**
 * Changes the password of user `sub`, asked with an access token of session
 * `sid`, and ends the user's sessions. A login verified with the old
 * password creates no session from then on, however long its check took:
 * the swap and the end of the sessions raise the credential version.
 */
export async function changePassword (deps: PasswordChangeDeps, sub: string, sid: string | undefined, change: PasswordChange, context: RequestContext): Promise<void> {
  const { events } = context
  const user = await deps.users.findById(sub)
  if (user === undefined) throw new BatonError('BATON_INVALID_TOKEN', 'the user no longer exists')
  // A stolen access token must not become a way to guess the password: the login limits apply.
  const attempt = await admitted(deps.limits.admitLogin(context.ip, user.username), 'password_change', events, { user: user.id, client_id: context.clientId })
  if (!await deps.passwords.verify(user.passwordHash, change.currentPassword)) {
    events.audit('password.change_failed', { user: user.id, sid, client_id: context.clientId, reason: 'wrong_password' })
    throw new BatonError('BATON_INVALID_GRANT', 'current password is not correct')
  }
  await attempt.succeeded()
  checkPasswordStrength(user.username, change.newPassword)
  const nextHash = await deps.passwords.hash(change.newPassword)
  if (!await deps.users.replacePasswordHash(user.id, user.passwordHash, nextHash, deps.clock())) {
    throw new BatonError('BATON_INVALID_GRANT', 'the password was changed concurrently; try again')
  }
  const ended = await deps.sessions.revokeAll(user.id, change.keepSession && sid !== undefined ? sid : '')
  events.audit('password.changed', { user: user.id, sid, client_id: context.clientId, sessions_ended: ended.length })
  for (const endedSid of ended) events.audit('session.revoked', { user: user.id, sid: endedSid, client_id: context.clientId, reason: 'password_change' })
}
