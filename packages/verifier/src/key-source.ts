import { createPublicKey, KeyObject } from 'node:crypto'
import type { AccessTokenAlgorithm } from '@baton/tokens'

/**
 * Where a verifier finds the public key for a token's `kid`.
 *
 * @example
 * const source: KeySource = { getKey: async (kid) => pems.get(kid), ready: () => pems.size > 0 }
 */
export interface KeySource {
  /** Public key (PEM string or KeyObject) for a kid, or undefined if unknown even after a permitted refresh. */
  getKey: (kid: string) => Promise<string | KeyObject | undefined>
  /** True once at least one key set has been loaded. */
  ready: () => boolean
}

/** One public key a {@link createStaticKeySource} hands out. */
export interface StaticKey {
  kid: string
  publicKey: string | KeyObject
}

/**
 * A key source over keys the caller already holds, read afresh on every
 * lookup so a rotated keyring is seen at once (the auth-service passes its
 * own keyring's public keys).
 *
 * @example
 * createStaticKeySource(() => app.keyring.all().map((key) => ({ kid: key.kid, publicKey: key.publicKey })))
 */
export function createStaticKeySource (keys: () => Iterable<StaticKey>): KeySource {
  return {
    async getKey (kid) {
      for (const key of keys()) {
        if (key.kid === kid) return key.publicKey
      }
      return undefined
    },
    ready () {
      for (const _key of keys()) return true
      return false
    }
  }
}

/** A public key in the form fast-jwt verifies with, and the one algorithm it may verify. */
export interface UsableKey {
  /** SPKI PEM: @fastify/jwt caches one verifier per key string, never per KeyObject. */
  pem: string
  alg: AccessTokenAlgorithm
}

/** The Baton algorithm a key can verify, or undefined for any other kind of key. */
export function algorithmOf (key: KeyObject): AccessTokenAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  return undefined
}

/** Normalizes a public key (or the public half of a private one) to SPKI PEM; undefined if Baton cannot verify with it. */
export function toUsableKey (key: string | KeyObject): UsableKey | undefined {
  try {
    if (key instanceof KeyObject && key.type === 'secret') return undefined
    const publicKey = key instanceof KeyObject && key.type === 'public' ? key : createPublicKey(key)
    const alg = algorithmOf(publicKey)
    if (alg === undefined) return undefined
    return { pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), alg }
  } catch {
    return undefined
  }
}
