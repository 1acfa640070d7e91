import type { RevocationEvent } from '@baton/tokens'
import type { KeySource } from '../key-source.js'

interface Entry {
  sub: string
  /** When the entry may go (ms, this service's clock). */
  until: number
}

/** The claims a revocation can name. */
export interface RevocableClaims {
  sub: string
  jti: string
  sid?: string | undefined
}

/**
 * What the revocation feed said, held in memory only while it matters: an
 * entry goes once every token it names would be refused as expired anyway.
 * `isRevoked` is the per-request check: one or two Map lookups, no I/O.
 */
export class RevocationList {
  readonly #sessions = new Map<string, Entry>()
  readonly #tokens = new Map<string, Entry>()
  /** Revoked signing keys by kid: when the entry may go. */
  readonly #keys = new Map<string, number>()
  readonly #marginMs: number

  /** `marginMs`: this verifier's own clock skew, for a verifier whose clock runs behind the issuer's. */
  constructor (marginMs: number) {
    this.#marginMs = marginMs
  }

  /** Takes in an event unless it no longer matters at `nowMs`; returns whether it was kept. */
  apply (event: RevocationEvent, nowMs: number): boolean {
    const until = event.until + this.#marginMs
    if (until <= nowMs) return false
    if (event.kind === 'key') {
      this.#keys.set(event.kid, Math.max(this.#keys.get(event.kid) ?? 0, until))
    } else if (event.kind === 'token') {
      remember(this.#tokens, event.jti, event.sub, until)
    } else {
      for (const sid of event.sids) remember(this.#sessions, sid, event.sub, until)
    }
    return true
  }

  isRevoked (claims: RevocableClaims): boolean {
    if (this.#tokens.size > 0 && this.#tokens.get(claims.jti)?.sub === claims.sub) return true
    return claims.sid !== undefined && this.#sessions.size > 0 && this.#sessions.get(claims.sid)?.sub === claims.sub
  }

  /** Whether the signing key `kid` was revoked: no token it signed is accepted. */
  isKeyRevoked (kid: string): boolean {
    return this.#keys.size > 0 && this.#keys.has(kid)
  }

  /** Forgets what no longer matters at `nowMs`. */
  sweep (nowMs: number): void {
    for (const map of [this.#sessions, this.#tokens]) {
      for (const [key, entry] of map) if (entry.until <= nowMs) map.delete(key)
    }
    for (const [kid, until] of this.#keys) if (until <= nowMs) this.#keys.delete(kid)
  }

  get sessions (): number { return this.#sessions.size }
  get tokens (): number { return this.#tokens.size }
  get keys (): number { return this.#keys.size }
}

function remember (map: Map<string, Entry>, key: string, sub: string, until: number): void {
  const held = map.get(key)
  // Ids are random: the same one for another subject is not an event to trust over the first.
  if (held !== undefined && held.sub === sub) held.until = Math.max(held.until, until)
  else if (held === undefined) map.set(key, { sub, until })
}

/** `source` without the keys `list` holds as revoked: their tokens meet an unknown kid, and cause no key-set fetch. */
export function withoutRevokedKeys (source: KeySource, list: RevocationList): KeySource {
  const peek = source.peekKey
  return {
    getKey: async (kid) => list.isKeyRevoked(kid) ? undefined : await source.getKey(kid),
    // Kept synchronous, or every cached verification would cost a promise.
    ...(peek === undefined ? {} : { peekKey: (kid: string) => list.isKeyRevoked(kid) ? undefined : peek(kid) }),
    ready: () => source.ready()
  }
}
