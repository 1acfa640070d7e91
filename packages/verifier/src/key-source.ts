import { createPublicKey, KeyObject, type JsonWebKey } from 'node:crypto'
import type { AccessTokenAlgorithm } from '@baton/tokens'

/** A public key as a key source may hand it out: SPKI PEM, a KeyObject, or a public JWK. */
export type PublicKeyInput = string | KeyObject | JsonWebKey

/**
 * Where a verifier finds the public key for a token's `kid`.
 *
 * @example
 * const source: KeySource = { getKey: async (kid) => pems.get(kid), ready: () => pems.size > 0 }
 */
export interface KeySource {
  /** Public key for a kid, or undefined if unknown even after a permitted refresh. */
  getKey: (kid: string) => Promise<PublicKeyInput | undefined>
  /**
   * Optional: the key for a kid among those already at hand, without waiting
   * for anything. A verifier uses it to serve a token it has verified before
   * with no promise at all; without it (or when it answers undefined), it
   * asks `getKey`.
   */
  peekKey?: (kid: string) => PublicKeyInput | undefined
  /** True once at least one key set has been loaded. */
  ready: () => boolean
}

/** One public key a {@link createStaticKeySource} hands out. */
export interface StaticKey {
  kid: string
  publicKey: PublicKeyInput
}

/**
 * A key source over keys the caller already holds, read afresh on every
 * lookup so a rotated keyring is seen at once (the auth-service passes its
 * own keyring's public keys).
 *
 * @example
 * createStaticKeySource(() => app.keyring.all().map((key) => ({ kid: key.kid, publicKey: key.publicKey })))
 */
export function createStaticKeySource (keys: Iterable<StaticKey> | (() => Iterable<StaticKey>)): KeySource {
  const current = typeof keys === 'function' ? keys : () => keys
  function peekKey (kid: string): PublicKeyInput | undefined {
    for (const key of current()) {
      if (key.kid === kid) return key.publicKey
    }
    return undefined
  }
  return {
    peekKey,
    getKey: async (kid) => peekKey(kid),
    ready () {
      for (const _key of current()) return true
      return false
    }
  }
}

/** A public key in the form the verifier checks signatures with, and the one algorithm it may verify. */
export interface UsableKey {
  /** SPKI PEM: one stable string per key, whatever form it came in. */
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
export function toUsableKey (key: PublicKeyInput): UsableKey | undefined {
  try {
    if (key instanceof KeyObject && key.type === 'secret') return undefined
    const publicKey = key instanceof KeyObject
      ? (key.type === 'public' ? key : createPublicKey(key))
      : typeof key === 'string' ? createPublicKey(key) : createPublicKey({ key, format: 'jwk' })
    const alg = algorithmOf(publicKey)
    if (alg === undefined) return undefined
    return { pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), alg }
  } catch {
    return undefined
  }
}
