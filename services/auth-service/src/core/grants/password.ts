import { BatonError, formatScope, parseScope } from '@baton/tokens'
import { admitted } from '../accounts/rate-limits.js'
import { grantScope, sessionTokenResponse, type Grant, type GrantDeps } from './grant.js'

const INVALID_CREDENTIALS = 'invalid username or password'

/**
 * RFC 6749 §4.3: a username and password for a session. The attempt is
 * admitted by the rate limits before the password is looked at; an unknown
 * user costs the same hash as a wrong password.
 */
export function passwordGrant ({ users, passwords, limits, sessions, accessTokens }: GrantDeps): Grant {
  return async (client, params, context) => {
    const { events } = context
    if (params.username === undefined || params.password === undefined) {
      throw new BatonError('BATON_INVALID_REQUEST', 'username and password are required')
    }
    // Parse the scope before hashing: a malformed request should not cost a hash.
    if (params.scope !== undefined && parseScope(params.scope) === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
    const attempt = await admitted(limits.admitLogin(context.ip, params.username, params.device_token), 'login', events, { client_id: client.client_id })
    const user = await users.findByUsername(params.username)
    const valid = user === undefined
      ? await passwords.verifyDummy(params.password)
      : await passwords.verify(user.passwordHash, params.password)
    if (user === undefined || !valid) {
      events.audit('login.failed', { user: user?.id, client_id: client.client_id, reason: user === undefined ? 'unknown_user' : 'wrong_password' })
      throw new BatonError('BATON_INVALID_GRANT', INVALID_CREDENTIALS)
    }
    await attempt.succeeded()
    if (user.lockedAt !== undefined) {
      events.audit('login.failed', { user: user.id, client_id: client.client_id, reason: 'account_locked' })
      throw new BatonError('BATON_INVALID_GRANT', 'the account is locked; ask an administrator')
    }
    const allowed = client.scope === undefined ? user.scopes : user.scopes.filter((scope) => client.scope!.includes(scope))
    const scope = formatScope(grantScope(params.scope, allowed))
    const session = await sessions.create({ uid: user.id, username: user.username, scope, credentialVersion: user.credentialVersion, jkt: context.dpopJkt }, context)
    if (session === undefined) {
      // The password was changed, or every session ended, while this one was being verified.
      events.audit('login.failed', { user: user.id, client_id: client.client_id, reason: 'credential_changed' })
      throw new BatonError('BATON_INVALID_GRANT', 'the password or the sessions changed while signing in; sign in again')
    }
    events.audit('login.succeeded', { user: user.id, sid: session.sid, client_id: client.client_id, sessions_evicted: session.evicted.length })
    const issued = sessionTokenResponse(accessTokens, 'password', session, client, scope, context)
    return { ...issued, response: { ...issued.response, device_token: attempt.deviceToken() } }
  }
}
