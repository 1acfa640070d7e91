import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto'
import { ID_BYTES, randomId } from '../ids.js'
import { derivedHmacKey, type ServerSecret } from './refresh-token-codec.js'

/*
 * A device token is OWASP's "device cookie": a client that logged in to an
 * account gets one, and by presenting it at later logins to that account
 * proves that it has logged in before, so its failures count against a budget
 * of its own (accounts/rate-limits.ts). It grants nothing else. base64url of
 *
 *   version (1) | device id (16) | issued at, seconds (4) | MAC (16)
 *
 * The MAC, under a key derived from the refresh-token secret, covers these
 * bytes and the account (SHA-256 of the normalized username): a token is good
 * for one account only, until `ttlSeconds` after it was issued, and nothing
 * of it is stored.
 */
const VERSION = 1
const BODY_BYTES = 1 + ID_BYTES + 4
const MAC_BYTES = 16
const TOKEN_BYTES = BODY_BYTES + MAC_BYTES
const TOKEN_LENGTH = Math.ceil(TOKEN_BYTES * 4 / 3)

export class DeviceTokenCodec {
  readonly #macKey: () => KeyObject
  readonly #ttlMs: number

  constructor (serverSecret: ServerSecret, ttlSeconds: number) {
    this.#macKey = derivedHmacKey(serverSecret, 'baton device-token mac')
    this.#ttlMs = ttlSeconds * 1000
  }

  /** A token naming device `deviceId` (default: a new device) of `account`, issued at `nowMs`. */
  issue (account: Buffer, nowMs: number, deviceId = randomId()): string {
    const raw = Buffer.allocUnsafe(TOKEN_BYTES)
    raw[0] = VERSION
    Buffer.from(deviceId, 'base64url').copy(raw, 1)
    raw.writeUInt32BE(Math.floor(nowMs / 1000), 1 + ID_BYTES)
    this.#mac(raw.subarray(0, BODY_BYTES), account).copy(raw, BODY_BYTES)
    return raw.toString('base64url')
  }

  /** The device id, if `token` was issued for `account` and has not expired; else undefined. */
  deviceOf (token: string, account: Buffer, nowMs: number): string | undefined {
    // The secret first: until it has loaded, a login that presents a device token is answered 503.
    const macKey = this.#macKey()
    if (token.length !== TOKEN_LENGTH) return undefined
    const raw = Buffer.from(token, 'base64url')
    // Re-encoding rejects non-canonical spellings of the same bytes.
    if (raw.length !== TOKEN_BYTES || raw[0] !== VERSION || raw.toString('base64url') !== token) return undefined
    if (!timingSafeEqual(raw.subarray(BODY_BYTES), this.#mac(raw.subarray(0, BODY_BYTES), account, macKey))) return undefined
    if (raw.readUInt32BE(1 + ID_BYTES) * 1000 + this.#ttlMs <= nowMs) return undefined
    return raw.subarray(1, 1 + ID_BYTES).toString('base64url')
  }

  #mac (body: Buffer, account: Buffer, macKey: KeyObject = this.#macKey()): Buffer {
    return createHmac('sha256', macKey).update(body).update(account).digest().subarray(0, MAC_BYTES)
  }
}
