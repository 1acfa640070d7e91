import { BatonError } from '@baton/tokens'
import { BUILT_IN_CLIENT_ID, clientSecretMatches, type ClientConfig } from './clients.js'

interface ClientCredentialsInBody {
  client_id?: string
  client_secret?: string
}

function decodeBasic (header: string): { id: string, secret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header)
  if (match === null) return undefined
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return undefined
  try {
    // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
      secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '))
    }
  } catch {
    return undefined
  }
}

/**
 * Identifies the client of a token or revocation request from its
 * `Authorization` header and body: HTTP Basic (client_secret_basic), secret
 * in the body (client_secret_post), a bare client_id for a public client, or
 * nothing at all for the built-in client.
 */
export function authenticateClient (header: string | undefined, body: ClientCredentialsInBody, clients: ReadonlyMap<string, ClientConfig>): ClientConfig {
  const basic = header === undefined ? undefined : decodeBasic(header)
  if (header !== undefined && basic === undefined) {
    throw new BatonError('BATON_INVALID_CLIENT', 'client authentication failed')
  }
  if (basic !== undefined && (body.client_secret !== undefined || (body.client_id !== undefined && body.client_id !== basic.id))) {
    throw new BatonError('BATON_INVALID_REQUEST', 'use one client authentication method')
  }

  const clientId = basic?.id ?? body.client_id ?? BUILT_IN_CLIENT_ID
  const secret = basic?.secret ?? body.client_secret
  const client = clients.get(clientId)
  if (client === undefined) throw new BatonError('BATON_INVALID_CLIENT', 'client authentication failed')
  if (client.secretHash === undefined) {
    if (secret !== undefined) throw new BatonError('BATON_INVALID_CLIENT', 'client authentication failed')
  } else if (secret === undefined || !clientSecretMatches(client, secret)) {
    throw new BatonError('BATON_INVALID_CLIENT', 'client authentication failed')
  }
  return client
}
