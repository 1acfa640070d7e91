import type { RedisClient } from '../../redis/client.js'
import { defineScripts, type KeyRevocationStatus, type RotationMode, type RotationStatus } from '../../redis/scripts.js'
import { parseKeyring, type RotationPolicy, type StoredSigningKey } from './rotation-policy.js'
import { generateSigningKeyPem, kidOf } from './signing-key.js'

// The writes to the generated keyring in Redis, each one atomic script; the
// states they follow are rotation-policy.ts's.

export interface RotationResult {
  status: RotationStatus
  /** The key this call stored ('created' or 'added'). */
  key: StoredSigningKey | undefined
  /** The keyring as stored afterwards. */
  keys: StoredSigningKey[]
  /** The stored JSON, for callers that cache by it. */
  json: string
}

/**
 * Generates an Ed25519 key and offers it to the keyring in one atomic script,
 * so with several instances (and operators) at once exactly one key is added.
 */
export async function rotateSigningKey (redis: RedisClient, keyringKey: string, policy: RotationPolicy, mode: RotationMode, now: number): Promise<RotationResult> {
  defineScripts(redis)
  const pem = generateSigningKeyPem()
  const kid = kidOf(pem)
  const [status, json] = await redis.batonRotateSigningKey(keyringKey, now, kid, 'EdDSA', pem,
    policy.publishAheadMs, policy.retireAfterMs, mode, policy.rotationIntervalMs, policy.maxKeys)
  if (json === null) throw new Error('the keyring vanished while it was written')
  const keys = parseKeyring(json)
  const stored = status === 'created' || status === 'added' ? keys.find((key) => key.kid === kid) : undefined
  return { status, key: stored, keys, json }
}

export interface KeyRevocationResult {
  status: KeyRevocationStatus
  /** The key that signs from now on ('replaced'). */
  replacement: StoredSigningKey | undefined
  /** The keyring as stored afterwards (empty if there was none). */
  keys: StoredSigningKey[]
  json: string | undefined
}

/**
 * Takes a leaked key out of the generated keyring at once: it is no longer
 * published, and if it was signing, a fresh Ed25519 key signs from `now`
 * (revoke-signing-key.lua decides which, atomically, so a rotation running at
 * the same time cannot bring the key back as signer).
 */
export async function revokeSigningKey (redis: RedisClient, keyringKey: string, kid: string, now: number): Promise<KeyRevocationResult> {
  defineScripts(redis)
  const pem = generateSigningKeyPem()
  const replacementKid = kidOf(pem)
  const [status, json] = await redis.batonRevokeSigningKey(keyringKey, now, kid, replacementKid, 'EdDSA', pem)
  const keys = json === null ? [] : parseKeyring(json)
  const replacement = status === 'replaced' ? keys.find((key) => key.kid === replacementKid) : undefined
  return { status, replacement, keys, json: json ?? undefined }
}

/** Deletes retired keys; returns how many and the keyring as stored afterwards. */
export async function pruneSigningKeys (redis: RedisClient, keyringKey: string, policy: RotationPolicy, now: number): Promise<{ removed: number, json: string | null }> {
  defineScripts(redis)
  const [removed, json] = await redis.batonPruneSigningKeys(keyringKey, now, policy.retireAfterMs)
  return { removed, json }
}
