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
      'Failures follow RFC 6750: 401 with a `WWW-Authenticate: Bearer` challenge, 400 for a malformed header, 403 `insufficient_scope`.',
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'A Baton access token (`typ: at+jwt`) from the auth-service\'s `POST /oauth/token`'
      }
    },
    tags: [
      { name: 'resource', description: 'The protected API' },
      { name: 'operations', description: 'Probes and metrics' }
    ]
  }
}
