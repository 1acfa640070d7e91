import { formatScope } from '@baton/tokens'
import { grantScope, tokenType, type Grant, type GrantDeps } from './grant.js'

/** RFC 6749 §4.4: a confidential client's own access token, without a session or a refresh token. */
export function clientCredentialsGrant ({ accessTokens }: GrantDeps): Grant {
  return async (client, params, context) => {
    const scope = formatScope(grantScope(params.scope, client.scope ?? []))
    const access = accessTokens.issue({ sub: client.client_id, clientId: client.client_id, scope, jkt: context.dpopJkt })
    context.events.issued('client_credentials', 'access_token')
    return { response: { access_token: access.token, token_type: tokenType(context), expires_in: access.expiresIn, scope } }
  }
}
