import { BatonError } from '@baton/tokens'
import { GRANT_TYPES, type ClientConfig, type GrantType } from '../clients/clients.js'
import { clientCredentialsGrant } from './client-credentials.js'
import type { Grant, GrantDeps } from './grant.js'
import { passwordGrant } from './password.js'
import { refreshTokenGrant } from './refresh-token.js'

/** The token endpoint's dispatch table: one grant per `grant_type`. */
export type Grants = Readonly<Record<GrantType, Grant>>

export function createGrants (deps: GrantDeps): Grants {
  return {
    password: passwordGrant(deps),
    refresh_token: refreshTokenGrant(deps),
    client_credentials: clientCredentialsGrant(deps)
  }
}

const isGrantType = (value: string): value is GrantType => (GRANT_TYPES as readonly string[]).includes(value)

/** The grant a token request names, if Baton has it and the client is registered for it. */
export function grantFor (grants: Grants, grantType: string, client: ClientConfig): Grant {
  if (!isGrantType(grantType)) throw new BatonError('BATON_UNSUPPORTED_GRANT_TYPE', 'grant_type is not supported')
  if (!client.grant_types.includes(grantType)) throw new BatonError('BATON_UNAUTHORIZED_CLIENT', 'the client may not use this grant type')
  return grants[grantType]
}
