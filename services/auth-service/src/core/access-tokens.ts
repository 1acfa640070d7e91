import type { AccessTokenClaims } from '@baton/tokens'
import { randomId } from './ids.js'
import type { Keyring } from './keys/keyring.js'

export interface AccessTokenSubject {
  sub: string
  clientId: string
  scope: string
  /** The session; absent for client_credentials tokens, which have none. */
  sid?: string
  username?: string
  /** RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449 §6: `cnf.jkt`). */
  jkt?: string | undefined
}

export interface AccessTokenIssuer {
  /** Signs an RFC 9068 access token with the keyring's current key. */
  issue: (subject: AccessTokenSubject) => { token: string, expiresIn: number, claims: AccessTokenClaims }
}

export function createAccessTokenIssuer (options: { keyring: Pick<Keyring, 'current'>, issuer: string, audience: string, ttlSeconds: number, now: () => number }): AccessTokenIssuer {
  return {
    issue (subject) {
      const iat = Math.floor(options.now() / 1000)
      const claims: AccessTokenClaims = {
        iss: options.issuer,
        sub: subject.sub,
        aud: options.audience,
        exp: iat + options.ttlSeconds,
        iat,
        jti: randomId(),
        client_id: subject.clientId,
        scope: subject.scope,
        ...(subject.sid === undefined ? {} : { sid: subject.sid }),
        ...(subject.username === undefined ? {} : { username: subject.username }),
        ...(subject.jkt === undefined ? {} : { cnf: { jkt: subject.jkt } })
      }
      return { token: options.keyring.current().sign(claims), expiresIn: options.ttlSeconds, claims }
    }
  }
}
