import type { AccessTokenAlgorithm } from '@baton/tokens'

/**
 * Rotation of the generated keyring. A key is
 *
 *   pending   published, not signing yet: from created_at until activate_at
 *   active    the one key that signs: from activate_at until the next key's activate_at
 *   retiring  published, not signing: until every token it signed has expired
 *   retired   unpublished; deleted from Redis by the next prune
 *
 * Only three things are ever written (rotate-signing-key.lua adds a key,
 * prune-signing-keys.lua deletes retired ones, revoke-signing-key.lua takes
 * out a leaked one and, if it was signing, adds a key that signs at once);
 * every state follows from the stored activate_at times and the clock, so
 * all instances that hold the same keyring agree on the signer without
 * talking to each other. A change made by a command is announced on
 * `<prefix>signing-keys:changed` so that instances reread at once rather
 * than at their next reload.
 */

export interface StoredSigningKey {
  kid: string
  alg: AccessTokenAlgorithm
  /** PKCS#8 PEM private key. */
  pem: string
  /** ms since the epoch */
  created_at: number
  /** ms since the epoch; the key signs from then until the next key's activate_at. */
  activate_at: number
}

export type KeyState = 'pending' | 'active' | 'retiring' | 'retired'

export interface KeyStatus {
  kid: string
  alg: AccessTokenAlgorithm
  state: KeyState
  created_at: number
  activate_at: number
  /** When the next key takes over signing; undefined while none is lined up. */
  deactivate_at: number | undefined
  /** When the key leaves the JWKS: deactivate_at + retire-after. */
  retire_at: number | undefined
}

export interface RotationPolicy {
  /** How long a new key is published before it signs (KEY_PUBLISH_AHEAD). */
  publishAheadMs: number
  /** How long a key stays published after it stopped signing. */
  retireAfterMs: number
  /** How long a key signs before the schedule adds its successor; 0: only the operator rotates. */
  rotationIntervalMs: number
  /** How often an instance reads the keyring again (KEYRING_RELOAD_INTERVAL). */
  reloadIntervalMs: number
  /** Most keys the keyring holds, retired ones not counted (they are deleted first). */
  maxKeys: number
}

/** Few enough for any verifier's key-set limit (@baton/verifier keeps 16). */
export const MAX_SIGNING_KEYS = 8

/** The defaults of `loadConfig({})`, for a keyring built without a policy. */
export const DEFAULT_ROTATION_POLICY: RotationPolicy = Object.freeze({
  publishAheadMs: 605_000,
  retireAfterMs: (900 + 5 + 5) * 1000,
  rotationIntervalMs: 30 * 86_400_000,
  reloadIntervalMs: 5000,
  maxKeys: MAX_SIGNING_KEYS
})

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Reads the stored keyring. Entries from before rotation existed carry no
 * activate_at: they signed from their creation. Throws on anything else.
 */
export function parseKeyring (json: string): StoredSigningKey[] {
  const parsed: unknown = JSON.parse(json)
  // Lua's cjson writes an empty array as {}.
  if (isRecord(parsed) && Object.keys(parsed).length === 0) return []
  if (!Array.isArray(parsed)) throw new Error('the stored keyring is not an array')
  return parsed.map((entry, index) => {
    if (!isRecord(entry) || typeof entry.kid !== 'string' || typeof entry.pem !== 'string' ||
        (entry.alg !== 'EdDSA' && entry.alg !== 'ES256') || typeof entry.created_at !== 'number') {
      throw new Error(`the stored keyring's entry ${index} is malformed`)
    }
    const activateAt = typeof entry.activate_at === 'number' ? entry.activate_at : entry.created_at
    return { kid: entry.kid, alg: entry.alg, pem: entry.pem, created_at: entry.created_at, activate_at: activateAt }
  })
}

function byActivation (a: StoredSigningKey, b: StoredSigningKey): number {
  return a.activate_at - b.activate_at || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0)
}

/**
 * The key that signs at `now`: the last one activated. Should this
 * instance's clock lag the one that created the keyring so that no key has
 * activated yet, the first one signs rather than none.
 */
export function signerOf (keys: readonly StoredSigningKey[], now: number): StoredSigningKey | undefined {
  let signer: StoredSigningKey | undefined
  let first: StoredSigningKey | undefined
  for (const key of keys) {
    if (first === undefined || byActivation(key, first) < 0) first = key
    if (key.activate_at <= now && (signer === undefined || byActivation(key, signer) > 0)) signer = key
  }
  return signer ?? first
}

/** Every key with its state at `now`, in activation order. */
export function keyStates (keys: readonly StoredSigningKey[], now: number, retireAfterMs: number): KeyStatus[] {
  const signer = signerOf(keys, now)
  return [...keys].sort(byActivation).map((key) => {
    let deactivateAt: number | undefined
    for (const other of keys) {
      if (other.activate_at > key.activate_at && (deactivateAt === undefined || other.activate_at < deactivateAt)) deactivateAt = other.activate_at
    }
    const retireAt = deactivateAt === undefined ? undefined : deactivateAt + retireAfterMs
    let state: KeyState
    if (key === signer) state = 'active'
    else if (key.activate_at > now) state = 'pending'
    else state = retireAt !== undefined && retireAt <= now ? 'retired' : 'retiring'
    return { kid: key.kid, alg: key.alg, state, created_at: key.created_at, activate_at: key.activate_at, deactivate_at: deactivateAt, retire_at: retireAt }
  })
}

/** Whether the schedule should add a key now: none is pending and the newest has signed for the interval. */
export function rotationDue (keys: readonly StoredSigningKey[], now: number, intervalMs: number): boolean {
  if (intervalMs <= 0 || keys.length === 0) return false
  const newest = Math.max(...keys.map((key) => key.activate_at))
  return newest <= now && newest + intervalMs <= now
}

/** A key's status for people: times as ISO strings, no private part. */
export function describeKey (status: KeyStatus): Record<string, string> {
  const described: Record<string, string> = {
    kid: status.kid,
    alg: status.alg,
    state: status.state,
    created_at: new Date(status.created_at).toISOString(),
    activate_at: new Date(status.activate_at).toISOString()
  }
  if (status.deactivate_at !== undefined) described.deactivate_at = new Date(status.deactivate_at).toISOString()
  if (status.retire_at !== undefined) described.retire_at = new Date(status.retire_at).toISOString()
  return described
}
