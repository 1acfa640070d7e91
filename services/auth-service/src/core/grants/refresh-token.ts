import { BatonError, formatScope, parseScope } from '@baton/tokens'
import type { RefreshOutcome } from '../events.js'
import type { RotateOutcome } from '../sessions/session-store.js'
import { sessionTokenResponse, type Grant, type GrantDeps } from './grant.js'

// The session store's outcomes as the metrics count them: the three ways a token is not valid are one.
const REFRESH_OUTCOMES: Record<RotateOutcome['outcome'], RefreshOutcome> = {
  rotated: 'rotated',
  grace_retry: 'grace_retry',
  reuse_detected: 'reuse_detected',
  expired: 'expired',
  invalid_scope: 'invalid_scope',
  grace_exhausted: 'grace_exhausted',
  malformed: 'invalid',
  unknown: 'invalid',
  wrong_client: 'invalid',
  dpop_required: 'invalid'
}

/**
 * RFC 6749 §6: a refresh token for its successor and a new access token,
 * rotated in one step by the session store (rotate-refresh.lua). A spent
 * token coming back ends the session; a retry inside the grace window from
 * the client instance that rotated gets the same successor again.
 */
export function refreshTokenGrant ({ sessions, accessTokens }: GrantDeps): Grant {
  return async (client, params, context) => {
    const { events } = context
    if (params.refresh_token === undefined) throw new BatonError('BATON_INVALID_REQUEST', 'refresh_token is required')
    let requested = ''
    if (params.scope !== undefined) {
      const scopes = parseScope(params.scope)
      if (scopes === undefined) throw new BatonError('BATON_INVALID_SCOPE', 'scope is malformed')
      requested = formatScope(scopes)
    }
    const result = await sessions.rotate(params.refresh_token, context, requested, { jkt: context.dpopJkt, required: client.dpopRequired })
    events.refreshed(REFRESH_OUTCOMES[result.outcome])
    switch (result.outcome) {
      case 'rotated':
      case 'grace_retry':
        if (result.outcome === 'grace_retry') events.audit('refresh.grace_retry', { user: result.uid, sid: result.sid, client_id: client.client_id })
        return sessionTokenResponse(accessTokens, 'refresh_token', result, client, requested === '' ? result.scope : requested, context, result.outcome === 'rotated')
      case 'reuse_detected':
        events.audit('refresh.reuse_detected', { user: result.uid, sid: result.sid, client_id: client.client_id, reason: result.reason })
        events.audit('session.revoked', { user: result.uid, sid: result.sid, client_id: client.client_id, reason: 'refresh_token_reuse' })
        throw new BatonError('BATON_INVALID_GRANT', result.reason === 'missing_dpop_proof' || result.reason === 'other_dpop_key'
          ? 'refresh token is bound to a DPoP key this request did not prove; the session is revoked'
          : 'refresh token was already used; the session is revoked')
      case 'grace_exhausted':
        events.audit('refresh.grace_exhausted', { user: result.uid, sid: result.sid, client_id: client.client_id })
        throw new BatonError('BATON_GRACE_RETRIES_SPENT', 'refresh token was already used and retried too often; use the refresh token an earlier answer returned')
      case 'invalid_scope':
        throw new BatonError('BATON_INVALID_SCOPE', 'scope exceeds the session\'s scope')
      case 'expired':
        throw new BatonError('BATON_INVALID_GRANT', 'the session has expired')
      case 'dpop_required':
        throw new BatonError('BATON_INVALID_DPOP_PROOF', 'this client must send a DPoP proof')
      default:
        throw new BatonError('BATON_INVALID_GRANT', 'refresh token is not valid')
    }
  }
}
