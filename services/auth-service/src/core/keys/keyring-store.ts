import { randomBytes } from 'node:crypto'
import { BatonError } from '@baton/tokens'
import type { RedisClient } from '../../redis/client.js'
import { storage } from '../../redis/errors.js'
import { defineScripts, type KeyRevocationStatus, type RotationMode, type RotationStatus } from '../../redis/scripts.js'
import { parseKeyring, type RotationPolicy, type StoredSigningKey } from './rotation-policy.js'
import { generateSigningKeyPem, kidOf } from './signing-key.js'

// The generated keyring and the refresh-token secret in Redis. The keyring's
// writes are each one atomic script; the states they follow are rotation-policy.ts's.

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

/**
 * The shared refresh-token secret: the stored one, else `held` (the one this
 * instance already uses: Redis lost it) or a new one, written so that every
 * instance reads the same.
 */
export async function loadRefreshSecret (redis: RedisClient, key: string, held: string | undefined): Promise<string> {
  // Read first: a read-only replica can still serve what it holds.
  const stored = await storage(redis.get(key))
  if (stored !== null) return stored
  await storage(redis.set(key, held ?? randomBytes(32).toString('base64url'), 'NX'))
  const secret = await storage(redis.get(key))
  if (secret === null) throw new BatonError('BATON_UNAVAILABLE', 'refresh-token secret could not be stored')
  return secret
}
