import { createHmac, timingSafeEqual } from 'node:crypto'
import { derivedKey, type ServerSecret } from '../sessions/refresh-token-codec.js'

/*
 * RFC 9449 §8 server nonces without state: a nonce is base64url of
 *
 *   period (4) | MAC (16)
 *
 * where the period is the clock divided into `lifetimeMs` slices and the MAC,
 * under a key derived from the refresh-token secret, covers it. Every
 * instance that shares the secret issues and accepts the same nonces, and
 * nothing is stored: a nonce of the current or the previous period is
 * fresh, so one lives between one and two lifetimes.
 */
const PERIOD_BYTES = 4
const MAC_BYTES = 16
const NONCE_LENGTH = Math.ceil((PERIOD_BYTES + MAC_BYTES) * 4 / 3)

export class DpopNonces {
  readonly #key: () => Buffer
  readonly #lifetimeMs: number
  readonly #now: () => number

  constructor (serverSecret: ServerSecret, lifetimeSeconds: number, now: () => number) {
    this.#key = derivedKey(serverSecret, 'baton dpop-nonce mac')
    this.#lifetimeMs = lifetimeSeconds * 1000
    this.#now = now
  }

  /** The nonce a client should put in its next proof. */
  current (): string {
    return this.#nonce(this.#period())
  }

  /** Whether `nonce` is one this server issued in the current or the previous period. */
  isFresh (nonce: string): boolean {
    if (nonce.length !== NONCE_LENGTH) return false
    const raw = Buffer.from(nonce, 'base64url')
    if (raw.length !== PERIOD_BYTES + MAC_BYTES || raw.toString('base64url') !== nonce) return false
    const period = raw.readUInt32BE(0)
    const now = this.#period()
    if (period !== now && period !== now - 1) return false
    return timingSafeEqual(raw.subarray(PERIOD_BYTES), this.#mac(period))
  }

  #period (): number {
    // Wraps after 2^32 periods: far beyond any lifetime the configuration allows.
    return Math.floor(this.#now() / this.#lifetimeMs) >>> 0
  }

  #nonce (period: number): string {
    const raw = Buffer.allocUnsafe(PERIOD_BYTES + MAC_BYTES)
    raw.writeUInt32BE(period, 0)
    this.#mac(period).copy(raw, PERIOD_BYTES)
    return raw.toString('base64url')
  }

  #mac (period: number): Buffer {
    const bytes = Buffer.allocUnsafe(PERIOD_BYTES)
    bytes.writeUInt32BE(period, 0)
    return createHmac('sha256', this.#key()).update(bytes).digest().subarray(0, MAC_BYTES)
  }
}
