import { readFileSync } from 'node:fs'
import type { OpenApiOptions } from '@baton/service-kit'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/** What the resource-service's OpenAPI document says about itself; the paths come from the route schemas. */
export function resourceOpenApiOptions (): OpenApiOptions {
  return {
    title: 'Baton resource-service',
    version,
    description: 'An example API protected by Baton access tokens, verified locally from the issuer\'s JWKS ' +
      '(and, when it follows the revocation feed, refused as soon as they are revoked). ' +
      'Failures follow RFC 6750: 401 with a `WWW-Authenticate: Bearer` challenge, 400 for a malformed header, 403 `insufficient_scope`. ' +
      'DPoP-bound tokens (RFC 9449) are sent as `Authorization: DPoP <token>` with a `DPoP` proof; their failures carry a `DPoP` challenge ' +
      '(`invalid_dpop_proof`, or `use_dpop_nonce`), and such a token sent as Bearer is refused.',
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'A Baton access token (`typ: at+jwt`) from the auth-service\'s `POST /oauth/token`'
      },
      dpopAuth: {
        type: 'http',
        // OpenAPI allows bearerFormat with the bearer scheme only.
        scheme: 'dpop',
        description: 'A DPoP-bound Baton access token (`cnf.jkt`), with a `DPoP` header: a proof (RFC 9449 §4) signed by the key it is bound to, ' +
          'for this method and URL, with `ath`, the hash of the token'
      }
    },
    tags: [
      { name: 'resource', description: 'The protected API' },
      { name: 'operations', description: 'Probes and metrics' }
    ]
  }
}
