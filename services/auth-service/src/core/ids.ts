import { randomFillSync } from 'node:crypto'

/** Identifiers (users, sessions, token ids, devices) are 128 bits. */
export const ID_BYTES = 16

const BASE64URL = /^[A-Za-z0-9_-]+$/

// CSPRNG output drawn 4 KiB at a time: each rotation needs three small random
// values, and a call into OpenSSL per value cost more than the bytes.
const randomPool = Buffer.alloc(4096)
let randomPoolOffset = randomPool.length

/** `size` fresh bytes from the CSPRNG (a copy: no two callers share bytes). */
export function randomBytes (size: number): Buffer {
  if (size > randomPool.length) return randomFillSync(Buffer.alloc(size))
  if (randomPoolOffset + size > randomPool.length) {
    randomFillSync(randomPool)
    randomPoolOffset = 0
  }
  const bytes = Buffer.from(randomPool.subarray(randomPoolOffset, randomPoolOffset + size))
  // Spent bytes are wiped, so the pool never holds a secret already handed out.
  randomPool.fill(0, randomPoolOffset, randomPoolOffset + size)
  randomPoolOffset += size
  return bytes
}

/** A fresh 128-bit identifier (users, sessions, token ids), base64url. */
export function randomId (): string {
  return randomBytes(ID_BYTES).toString('base64url')
}

/** True for a well-formed 128-bit base64url identifier. */
export function isId (value: string): boolean {
  return value.length === 22 && BASE64URL.test(value) && Buffer.from(value, 'base64url').toString('base64url') === value
}
