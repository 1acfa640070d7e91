import { readFileSync } from 'node:fs'
import type { OpenApiOptions } from '@baton/service-kit'
import type { Config } from '../../config.js'

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

/** What the auth-service's OpenAPI document says about itself; the paths come from the route schemas. */
export function authOpenApiOptions (config: Pick<Config, 'ISSUER'>): OpenApiOptions {
  return {
    title: 'Baton auth-service',
    version,
    description: 'Issues short-lived JWT access tokens (RFC 9068) and rotating opaque refresh tokens; ' +
      'revocation (RFC 7009), introspection (RFC 7662), discovery (RFC 8414) and the public keys (RFC 7517). ' +
      'OAuth endpoints take `application/x-www-form-urlencoded` or JSON bodies and answer errors as RFC 6749 §5.2.',
    serverUrl: config.ISSUER,
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'A Baton access token (`typ: at+jwt`) from `POST /oauth/token`'
      },
      dpopAuth: {
        type: 'http',
        scheme: 'dpop',
        description: 'A DPoP-bound Baton access token (`token_type: DPoP`, RFC 9449) as `Authorization: DPoP <token>`, with a `DPoP` proof of its key for this method and URL (`ISSUER` + the path) that carries `ath`. Such a token sent as Bearer is refused'
      },
      clientBasic: {
        type: 'http',
        scheme: 'basic',
        description: 'client_secret_basic: a confidential client\'s `client_id` and `client_secret`, each form-urlencoded (RFC 6749 §2.3.1). ' +
          'client_secret_post sends the same two values as body fields instead; public clients send only `client_id` (or nothing, for the built-in client `baton`).'
      }
    },
    tags: [
      { name: 'oauth', description: 'Token, revocation and introspection endpoints' },
      { name: 'discovery', description: 'Metadata and public keys, for clients and verifiers' },
      { name: 'users', description: 'Accounts' },
      { name: 'sessions', description: 'The caller\'s sessions (refresh-token families)' },
      { name: 'operations', description: 'Probes and metrics' }
    ]
  }
}
