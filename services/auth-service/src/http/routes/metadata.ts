import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { OPENAPI_UI_PATH } from '@baton/service-kit'
import { GRANT_TYPES, type ClientConfig } from '../../core/clients/clients.js'
import type { Config } from '../../config.js'

export const METADATA_PATH = '/.well-known/oauth-authorization-server'

/** Metadata changes only when the configuration does, i.e. with a restart. */
export const METADATA_MAX_AGE_SECONDS = 3600

const Url = (description: string) => Type.String({ format: 'uri', description })
const Strings = (description: string) => Type.Array(Type.String(), { description })

export const AuthorizationServerMetadataSchema = Type.Object({
  issuer: Url('The `iss` of every token; a client must check it equals the issuer it asked about'),
  token_endpoint: Url('RFC 6749 token endpoint'),
  jwks_uri: Url('The public keys that sign access tokens (RFC 7517)'),
  revocation_endpoint: Url('RFC 7009 revocation endpoint'),
  introspection_endpoint: Type.Optional(Url('RFC 7662 introspection endpoint; listed only when a client marked `introspection` is registered, since nobody else may call it')),
  grant_types_supported: Strings('The grants at least one registered client may use'),
  token_endpoint_auth_methods_supported: Strings('`none` while a public client is registered; the client_secret methods while a confidential one is'),
  revocation_endpoint_auth_methods_supported: Strings('The same as the token endpoint\'s'),
  introspection_endpoint_auth_methods_supported: Type.Optional(Strings('Confidential clients marked `introspection` only')),
  scopes_supported: Strings('DEFAULT_SCOPES and every scope a registered client may be granted'),
  response_types_supported: Type.Array(Type.String(), { maxItems: 0, description: 'Empty: there is no authorization endpoint' }),
  service_documentation: Url('The OpenAPI description of this service, browsable'),
  dpop_signing_alg_values_supported: Strings('RFC 9449 §5.1: the algorithms a DPoP proof may be signed with (`DPOP_SIGNING_ALGS`)')
})
export type AuthorizationServerMetadata = Static<typeof AuthorizationServerMetadataSchema>

/**
 * RFC 8414 metadata that lists exactly what this deployment accepts: grants
 * and client authentication methods follow the registered clients, not the
 * code's abilities, so a client never picks something it will be refused.
 *
 * Deliberately absent: `authorization_endpoint` and PKCE methods (no
 * authorization endpoint); `*_auth_signing_alg_values_supported` (no JWT
 * client authentication); and any access-token algorithm list, which
 * RFC 8414 does not define: each JWK in `jwks_uri` names its `alg`.
 */
export function authorizationServerMetadata (config: Pick<Config, 'ISSUER' | 'DEFAULT_SCOPES' | 'DPOP_SIGNING_ALGS'>, clients: Iterable<ClientConfig>): AuthorizationServerMetadata {
  const registered = [...clients]
  const issuer = config.ISSUER
  const anyPublic = registered.some((client) => client.secretHash === undefined)
  const anyConfidential = registered.some((client) => client.secretHash !== undefined)
  const anyIntrospector = registered.some((client) => client.introspection)
  const secretMethods = ['client_secret_basic', 'client_secret_post']
  const clientAuthMethods = [...(anyPublic ? ['none'] : []), ...(anyConfidential ? secretMethods : [])]
  const scopes = new Set(config.DEFAULT_SCOPES)
  for (const client of registered) for (const scope of client.scope ?? []) scopes.add(scope)

  return {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    ...(anyIntrospector
      ? { introspection_endpoint: `${issuer}/oauth/introspect`, introspection_endpoint_auth_methods_supported: secretMethods }
      : {}),
    grant_types_supported: GRANT_TYPES.filter((grant) => registered.some((client) => client.grant_types.includes(grant))),
    token_endpoint_auth_methods_supported: clientAuthMethods,
    revocation_endpoint_auth_methods_supported: clientAuthMethods,
    scopes_supported: [...scopes].sort(),
    response_types_supported: [],
    service_documentation: `${issuer}${OPENAPI_UI_PATH}`,
    dpop_signing_alg_values_supported: [...config.DPOP_SIGNING_ALGS]
  }
}

export default async function metadataRoutes (app: FastifyInstance): Promise<void> {
  const metadata = authorizationServerMetadata(app.config, app.auth.clients.values())
  // RFC 8414 §3.1: for an issuer with a path, clients insert the well-known
  // segment before that path; a proxy that forwards it finds it here too.
  const issuerPath = new URL(app.config.ISSUER).pathname.replace(/\/$/, '')
  const paths = issuerPath === '' ? [METADATA_PATH] : [METADATA_PATH, `${METADATA_PATH}${issuerPath}`]

  for (const url of paths) {
    app.withTypeProvider<TypeBoxTypeProvider>().get(url, {
      schema: {
        description: 'RFC 8414 authorization server metadata: the endpoints, grants, client authentication methods and scopes this deployment accepts',
        tags: ['discovery'],
        response: { 200: AuthorizationServerMetadataSchema }
      },
      logLevel: 'warn'
    }, async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${METADATA_MAX_AGE_SECONDS}`)
      return metadata
    })
  }
}
