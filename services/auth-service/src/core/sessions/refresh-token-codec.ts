import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hash, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto'
import { ID_BYTES, randomBytes } from '../ids.js'

/*
 * A refresh token is opaque to clients: base64url of
 *
 *   version (1) | user id (16) | session id (16) | secret (32) | MAC (16)
 *
 * The ids route the token to its session's keys (one Redis Cluster slot)
 * without a lookup; the 256-bit secret comes from the CSPRNG; the MAC, under
 * a server secret, proves that Baton issued this token for this session. So
 * a token that is neither the session's current nor its just-rotated one,
 * yet carries a valid MAC, can only be an older member of the family coming
 * back, and the family is revoked. A forged token fails the MAC and never
 * touches Redis. Redis keeps only SHA-256 hashes of tokens.
 */
const VERSION = 1
const SECRET_BYTES = 32
const MAC_BYTES = 16
const BODY_BYTES = 1 + 2 * ID_BYTES + SECRET_BYTES
const TOKEN_BYTES = BODY_BYTES + MAC_BYTES
const TOKEN_LENGTH = Math.ceil(TOKEN_BYTES * 4 / 3)
const BASE64URL = /^[A-Za-z0-9_-]+$/

export interface IssuedRefreshToken {
  token: string
  hash: string
  secret: Buffer
}

export interface ParsedRefreshToken {
  uid: string
  sid: string
  hash: string
  secret: Buffer
}

/**
 * HKDF-SHA-256 (RFC 5869) for one 32-byte block, on two HMACs: the same
 * bytes as `hkdfSync('sha256', …, 32)`, which builds key objects on every
 * call and cost a rotation more than its Redis round trip.
 */
export function hkdfSha256 (ikm: Buffer, salt: Buffer, info: string): Buffer {
  const prk = createHmac('sha256', salt.length === 0 ? Buffer.alloc(32) : salt).update(ikm).digest()
  return createHmac('sha256', prk).update(info).update(Buffer.of(1)).digest()
}

/**
 * A server secret: fixed, or read at each use from where it is kept (the
 * keyring loads it from Redis after start-up, and may have to replace it).
 */
export type ServerSecret = string | Buffer | (() => string)

/** A 32-byte key derived (HKDF-SHA-256) from a server secret for one purpose; derived again only when the secret changes. */
export function derivedKey (secret: ServerSecret, purpose: string): () => Buffer {
  let key: Buffer | undefined
  let derivedFrom: string | Buffer | undefined
  return () => {
    const current = typeof secret === 'function' ? secret() : secret
    if (key === undefined || current !== derivedFrom) {
      key = Buffer.from(hkdfSync('sha256', current, Buffer.alloc(0), purpose, 32))
      derivedFrom = current
    }
    return key
  }
}

/**
 * {@link derivedKey} as a key object for `createHmac`, which given bytes
 * builds a key object of its own on every call (most of an HMAC's cost).
 */
export function derivedHmacKey (secret: ServerSecret, purpose: string): () => KeyObject {
  const bytes = derivedKey(secret, purpose)
  let madeFrom: Buffer | undefined
  let key: KeyObject | undefined
  return () => {
    const current = bytes()
    if (key === undefined || current !== madeFrom) {
      key = createSecretKey(current)
      madeFrom = current
    }
    return key
  }
}

export class RefreshTokenCodec {
  readonly #macKey: () => KeyObject

  constructor (serverSecret: ServerSecret) {
    this.#macKey = derivedHmacKey(serverSecret, 'baton refresh-token mac')
  }

  issue (uid: string, sid: string): IssuedRefreshToken {
    const raw = Buffer.allocUnsafe(TOKEN_BYTES)
    raw[0] = VERSION
    writeId(raw, 1, uid)
    writeId(raw, 1 + ID_BYTES, sid)
    const secret = randomBytes(SECRET_BYTES)
    secret.copy(raw, 1 + 2 * ID_BYTES)
    this.#mac(raw.subarray(0, BODY_BYTES)).copy(raw, BODY_BYTES)
    return { token: raw.toString('base64url'), hash: hashToken(raw), secret }
  }

  /** The token's parts if Baton issued it; undefined for anything malformed or forged. */
  parse (token: string): ParsedRefreshToken | undefined {
    // The secret first: until it has loaded, every token is answered 503, well-formed or not.
    const macKey = this.#macKey()
    if (token.length !== TOKEN_LENGTH || !BASE64URL.test(token)) return undefined
    const raw = Buffer.from(token, 'base64url')
    // Re-encoding rejects non-canonical spellings of the same bytes.
    if (raw.length !== TOKEN_BYTES || raw[0] !== VERSION || raw.toString('base64url') !== token) return undefined
    const mac = raw.subarray(BODY_BYTES)
    if (!timingSafeEqual(mac, this.#mac(raw.subarray(0, BODY_BYTES), macKey))) return undefined
    return {
      uid: raw.subarray(1, 1 + ID_BYTES).toString('base64url'),
      sid: raw.subarray(1 + ID_BYTES, 1 + 2 * ID_BYTES).toString('base64url'),
      hash: hashToken(raw),
      secret: Buffer.from(raw.subarray(1 + 2 * ID_BYTES, BODY_BYTES))
    }
  }

  #mac (body: Buffer, macKey: KeyObject = this.#macKey()): Buffer {
    return createHmac('sha256', macKey).update(body).digest().subarray(0, MAC_BYTES)
  }
}

function writeId (target: Buffer, offset: number, id: string): void {
  const bytes = Buffer.from(id, 'base64url')
  if (bytes.length !== ID_BYTES) throw new Error('identifier must be 16 bytes')
  bytes.copy(target, offset)
}

function hashToken (raw: Buffer): string {
  return hash('sha256', raw, 'base64url')
}

function successorKey (predecessorSecret: Buffer, sid: string): Buffer {
  return hkdfSha256(predecessorSecret, Buffer.from(sid, 'base64url'), 'baton refresh-token successor')
}

/**
 * Encrypts a successor token under a key only its predecessor's holder can
 * derive, so a retry inside the grace window gets the same successor back
 * while Redis holds nothing usable in plain text.
 */
export function sealSuccessor (successor: string, predecessorSecret: Buffer, sid: string): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', successorKey(predecessorSecret, sid), iv)
  cipher.setAAD(Buffer.from(sid))
  const body = Buffer.concat([cipher.update(successor, 'utf8'), cipher.final()])
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')
}

export function unsealSuccessor (sealed: string, predecessorSecret: Buffer, sid: string): string | undefined {
  const raw = Buffer.from(sealed, 'base64url')
  if (raw.length < 12 + 16 + 1) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', successorKey(predecessorSecret, sid), raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(sid))
    decipher.setAuthTag(raw.subarray(raw.length - 16))
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8')
  } catch {
    return undefined
  }
}
