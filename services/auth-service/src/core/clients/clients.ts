import { createHash, timingSafeEqual } from 'node:crypto'
import { parseScope } from '@baton/tokens'
import { SettingError } from '../errors.js'
import { parseOrigin } from './origins.js'

export const GRANT_TYPES = ['password', 'refresh_token', 'client_credentials'] as const
export type GrantType = typeof GRANT_TYPES[number]

/** How a client gets its refresh token: in the token response's body, or only in an HttpOnly cookie (browsers). */
export const REFRESH_TOKEN_DELIVERIES = ['body', 'cookie'] as const
export type RefreshTokenDelivery = typeof REFRESH_TOKEN_DELIVERIES[number]

/** The built-in first-party public client that a `client_id`-less request stands for. */
export const BUILT_IN_CLIENT_ID = 'baton'

export interface ClientConfig {
  client_id: string
  /** SHA-256 of the secret; undefined for a public client. */
  secretHash: Buffer | undefined
  grant_types: readonly GrantType[]
  /** Scopes the client may ask for; undefined: whatever the user is allowed. */
  scope: readonly string[] | undefined
  /** May call `/oauth/introspect` (RFC 7662 leaves the choice of callers to the server): resource servers, not every client. */
  introspection: boolean
  refreshTokenDelivery: RefreshTokenDelivery
  /** Cookie mode: the origins whose pages may use the client, a subset of CORS_ORIGINS; undefined: all of CORS_ORIGINS. */
  allowedOrigins: readonly string[] | undefined
  /** RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request of the client must carry a DPoP proof. */
  dpopRequired: boolean
}

const CLIENT_ID = /^[A-Za-z0-9._~-]{1,128}$/

/** Client secrets are long random strings, so one SHA-256 is a sound hash; a `sha256:` prefix takes a pre-hashed value. */
function hashClientSecret (secret: string): Buffer {
  return createHash('sha256').update(secret).digest()
}

export function clientSecretMatches (client: ClientConfig, presented: string): boolean {
  return client.secretHash !== undefined && timingSafeEqual(client.secretHash, hashClientSecret(presented))
}

/** The first-party public client that is registered unless CLIENTS overrides it. */
const BUILT_IN_CLIENT: ClientConfig = {
  client_id: BUILT_IN_CLIENT_ID,
  secretHash: undefined,
  grant_types: ['password', 'refresh_token'],
  scope: undefined,
  introspection: false,
  refreshTokenDelivery: 'body',
  allowedOrigins: undefined,
  dpopRequired: false
}

/** The registered clients by id; none registered (a configuration not read by `loadConfig`): the built-in one. */
export function clientRegistry (clients: readonly ClientConfig[]): ReadonlyMap<string, ClientConfig> {
  return new Map((clients.length > 0 ? clients : [BUILT_IN_CLIENT]).map((client) => [client.client_id, client]))
}

/**
 * Validates the CLIENTS setting; the built-in public client is always present
 * unless overridden. `corsOrigins`: the origins a cookie-mode client's pages
 * may have (CORS_ORIGINS).
 */
export function parseClients (value: unknown, corsOrigins: readonly string[] = []): ClientConfig[] {
  if (!Array.isArray(value)) throw new SettingError('CLIENTS', 'must be a JSON array of clients')
  const clients = new Map<string, ClientConfig>([[BUILT_IN_CLIENT_ID, BUILT_IN_CLIENT]])
  value.forEach((entry: unknown, index) => {
    const where = `CLIENTS[${index}]`
    if (typeof entry !== 'object' || entry === null) throw new SettingError(where, 'must be an object')
    const { client_id: clientId, client_secret: secret, grant_types: grants, scope, introspection = false, refresh_token_delivery: delivery = 'body', allowed_origins: origins, dpop_bound_access_tokens: dpopRequired = false } = entry as Record<string, unknown>
    if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId)) throw new SettingError(`${where}.client_id`, 'must be 1-128 characters of A-Z a-z 0-9 . _ ~ -')
    if (secret !== undefined && (typeof secret !== 'string' || secret.length < 16)) throw new SettingError(`${where}.client_secret`, 'must be a string of at least 16 characters')
    if (typeof introspection !== 'boolean') throw new SettingError(`${where}.introspection`, 'must be true or false')
    if (typeof dpopRequired !== 'boolean') throw new SettingError(`${where}.dpop_bound_access_tokens`, 'must be true or false')
    if (introspection && secret === undefined) throw new SettingError(`${where}.introspection`, 'needs a confidential client (client_secret)')
    // A resource server that only introspects needs no grant of its own.
    if (!Array.isArray(grants) || (grants.length === 0 && !introspection) || !grants.every((grant) => (GRANT_TYPES as readonly unknown[]).includes(grant))) {
      throw new SettingError(`${where}.grant_types`, `must be an array of ${GRANT_TYPES.join(', ')}, not empty unless introspection is true`)
    }
    if (typeof secret === 'string' && secret.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/.test(secret)) {
      throw new SettingError(`${where}.client_secret`, 'with the sha256: prefix must hold 64 lowercase hex digits')
    }
    if (grants.includes('client_credentials') && secret === undefined) throw new SettingError(`${where}.grant_types`, 'client_credentials needs a confidential client (client_secret)')
    let scopes: string[] | undefined
    if (scope !== undefined) {
      scopes = typeof scope === 'string' ? parseScope(scope) : undefined
      if (scopes === undefined) throw new SettingError(`${where}.scope`, 'must be a space-separated scope string')
    }
    if (!(REFRESH_TOKEN_DELIVERIES as readonly unknown[]).includes(delivery)) throw new SettingError(`${where}.refresh_token_delivery`, `must be one of ${REFRESH_TOKEN_DELIVERIES.join(', ')}`)
    const allowedOrigins = parseAllowedOrigins(origins, `${where}.allowed_origins`, delivery as RefreshTokenDelivery, corsOrigins)
    // Without an origin no page could ever use the client: a configuration mistake, not a policy.
    if (delivery === 'cookie' && (allowedOrigins ?? corsOrigins).length === 0) {
      throw new SettingError(`${where}.refresh_token_delivery`, 'cookie needs the origins of the pages that use the client: set CORS_ORIGINS')
    }
    clients.set(clientId, {
      client_id: clientId,
      secretHash: typeof secret === 'string'
        ? (secret.startsWith('sha256:') ? Buffer.from(secret.slice(7), 'hex') : hashClientSecret(secret))
        : undefined,
      grant_types: grants as GrantType[],
      scope: scopes,
      introspection,
      refreshTokenDelivery: delivery as RefreshTokenDelivery,
      allowedOrigins,
      dpopRequired
    })
  })
  return [...clients.values()]
}

/**
 * A cookie-mode client's own origins: CORS decides which pages may read any
 * answer at all, so a client's list can only narrow CORS_ORIGINS.
 */
function parseAllowedOrigins (value: unknown, path: string, delivery: RefreshTokenDelivery, corsOrigins: readonly string[]): readonly string[] | undefined {
  if (value === undefined) return undefined
  if (delivery !== 'cookie') throw new SettingError(path, 'applies only to a client with "refresh_token_delivery": "cookie"')
  if (!Array.isArray(value) || value.length === 0 || !value.every((origin) => typeof origin === 'string')) throw new SettingError(path, 'must be a non-empty array of origins')
  const origins = value.map((origin: string) => parseOrigin(origin, path))
  const outside = origins.find((origin) => !corsOrigins.includes(origin))
  if (outside !== undefined) throw new SettingError(path, `"${outside}" is not in CORS_ORIGINS: a client's origins can only narrow that list`)
  return Object.freeze([...new Set(origins)])
}
