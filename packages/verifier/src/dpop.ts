// The DPoP proof check of RFC 9449 §4.3, shared by the token endpoint and by
// every verifier: pure, framework-free and storage-free (the caller brings
// the replay cache), so that both ends refuse exactly the same proofs.
import { constants, createHash, createHmac, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto'
import type { JWK } from 'jose'
import { LRUCache } from 'lru-cache'
import { hasDuplicateMembers } from './checks.js'

/**
 * The proof algorithms accepted by default: asymmetric only (RFC 9449 §4.3
 * never allows `none` or a MAC). ES256 is what browsers and most clients use
 * (a non-extractable WebCrypto P-256 key); EdDSA/Ed25519, ES384 and the
 * RSA algorithms are there for other clients. `algorithms` narrows it.
 */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] as const
export type DpopAlgorithm = typeof DPOP_ALGORITHMS[number]

/** The JWS `typ` of a DPoP proof (RFC 9449 §4.2). */
export const DPOP_PROOF_TYP = 'dpop+jwt'
/** Longest proof read at all: a proof with a 4096-bit RSA key is about 2 KiB. */
export const MAX_DPOP_PROOF_LENGTH = 8192
const MAX_JTI_LENGTH = 256
const MAX_NONCE_LENGTH = 512
// RSA verification cost grows with the modulus the client chooses; 4096 bits is the most any client needs.
const MAX_RSA_MODULUS_CHARS = Math.ceil(4096 / 6)
// So does the public exponent, and OpenSSL bounds it (to 64 bits) only for moduli over 3072 bits: a huge one
// makes every proof, however badly signed, cost a private-key operation. Real keys use 65537.
const MAX_RSA_EXPONENT_CHARS = Math.ceil(64 / 6)

/** The key type (and curve) each algorithm needs, so that a header cannot pair an algorithm with another kind of key. */
const KEY_TYPES: Record<DpopAlgorithm, { kty: string, crv?: string }> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
  PS256: { kty: 'RSA' },
  RS256: { kty: 'RSA' }
}
// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv']
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** Why a proof was refused; the `reason` of a {@link DpopError}, for logs and metrics. */
export const DPOP_REFUSALS = {
  missing: 'a DPoP proof is required',
  multiple: 'the request carries more than one DPoP proof',
  too_large: 'the DPoP proof is too large',
  malformed: 'the DPoP proof is not a signed JWT',
  duplicate: 'the DPoP proof names a member twice',
  typ: 'the DPoP proof type is not dpop+jwt',
  algorithm: 'the DPoP proof algorithm is not accepted',
  jwk: 'the DPoP proof header does not carry a public key for its algorithm',
  signature: 'the DPoP proof signature is invalid',
  claims: 'the DPoP proof claims are not valid',
  jti: 'the DPoP proof has no valid jti',
  htm: 'the DPoP proof is for another HTTP method',
  htu: 'the DPoP proof is for another URL',
  iat: 'the DPoP proof was not issued within the accepted window',
  ath: 'the DPoP proof is not bound to this access token',
  key: 'the DPoP proof is signed with another key than the one the token is bound to',
  replay: 'the DPoP proof has been used before',
  nonce: 'the DPoP proof must carry the server\'s nonce'
} as const
export type DpopRefusalReason = keyof typeof DPOP_REFUSALS

/**
 * A refused proof. `code` is the RFC 9449 error: `use_dpop_nonce` when the
 * proof lacks the nonce the server demands (answer it with a fresh
 * `DPoP-Nonce` header), `invalid_dpop_proof` for everything else. The status
 * is the caller's: 400 at a token endpoint (RFC 9449 §5), 401 at a resource.
 */
export class DpopError extends Error {
  readonly code: 'invalid_dpop_proof' | 'use_dpop_nonce'
  readonly reason: DpopRefusalReason

  constructor (reason: DpopRefusalReason, description: string = DPOP_REFUSALS[reason], options: { cause?: unknown } = {}) {
    super(description, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'DpopError'
    this.reason = reason
    this.code = reason === 'nonce' ? 'use_dpop_nonce' : 'invalid_dpop_proof'
  }
}

/**
 * Where proof `jti`s are remembered, so that each is accepted once. The
 * token endpoint shares one in Redis across its instances; a verifier keeps
 * its own in memory ({@link createMemoryReplayCache}).
 */
export interface DpopReplayCache {
  /**
   * True when `jti` was unseen and is now remembered until `expiresAtSeconds`
   * (epoch seconds: the end of the window in which the proof is acceptable);
   * false when it was seen before.
   */
  remember: (jti: string, expiresAtSeconds: number) => boolean | Promise<boolean>
}

/**
 * A replay cache in this process's memory, bounded: at most `max` entries
 * (default 100000), each dropped once its proof's window has passed. When it
 * is full of live entries the oldest go first; a proof replayed after its
 * entry was pushed out is still refused by its `iat` once the window ends,
 * so size the cache for the proofs one window brings.
 */
export function createMemoryReplayCache (opts: { max?: number, now?: () => number } = {}): DpopReplayCache {
  const max = opts.max ?? 100_000
  if (!Number.isSafeInteger(max) || max < 1) throw new Error('createMemoryReplayCache: options.max must be an integer ≥ 1')
  const now = opts.now ?? Date.now
  // ttlResolution 0: every look-up reads the clock, so a test that moves `now` sees entries expire at once.
  const seen = new LRUCache<string, true>({ max, ttlResolution: 0, perf: { now } })
  return {
    remember (jti, expiresAtSeconds) {
      if (seen.has(jti)) return false
      seen.set(jti, true, { ttl: Math.max(1, expiresAtSeconds * 1000 - now()) })
      return true
    }
  }
}

/**
 * Server nonces (RFC 9449 §8): `current()` goes out in `DPoP-Nonce`
 * headers, `accepts(nonce)` says whether a proof's nonce (undefined when it
 * has none) is still good.
 */
export interface DpopNonces {
  current: () => string
  accepts: (nonce: string | undefined) => boolean
}

/**
 * Nonces that need no storage: an HMAC of the current time window, so every
 * instance given the same `secret` issues and accepts the same ones. A nonce
 * is accepted in its own window and the next, so it lives between one and two
 * `lifetimeSeconds` (default 300). Without a secret, a random one of this
 * process's: fine for one instance.
 */
export function createDpopNonces (opts: { secret?: string | Uint8Array, lifetimeSeconds?: number, now?: () => number } = {}): DpopNonces {
  const lifetimeMs = seconds(opts.lifetimeSeconds, 300, 'lifetimeSeconds') * 1000
  if (lifetimeMs < 1000) throw new Error('createDpopNonces: options.lifetimeSeconds must be at least 1')
  const secret = opts.secret ?? randomBytes(32)
  const now = opts.now ?? Date.now
  const nonceOf = (window: number): string => createHmac('sha256', secret).update(`dpop-nonce:${window}`).digest('base64url').slice(0, 32)
  return {
    current: () => nonceOf(Math.floor(now() / lifetimeMs)),
    accepts (nonce) {
      if (nonce === undefined) return false
      const window = Math.floor(now() / lifetimeMs)
      return nonce === nonceOf(window) || nonce === nonceOf(window - 1)
    }
  }
}

export interface DpopProofOptions {
  /** The request's method, as it arrived (`htm` must equal it). */
  method: string
  /**
   * The request's full external URL, e.g. `https://api.example.com/me?x=1`.
   * `htu` must name the same scheme, host, port and path; query and fragment
   * are ignored and both are normalised first (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3).
   */
  url: string | URL
  /** The access token the request presents: then `ath` must be its hash (RFC 9449 §4.3 item 11). */
  accessToken?: string
  /** The accepted algorithms; default {@link DPOP_ALGORITHMS}, and only a subset of them. */
  algorithms?: readonly string[]
  /** How old (by its `iat`) a proof may be. Default 60 seconds. */
  maxAgeSeconds?: number
  /** Leeway for clocks that disagree, both ways. Default 5 seconds. */
  clockSkewSeconds?: number
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  now?: () => number
  /**
   * A nonce the proof must carry (RFC 9449 §8): the one accepted value, or a
   * function that says whether the proof's `nonce` (undefined when it has
   * none) is acceptable. A proof without an accepted nonce is refused with
   * `use_dpop_nonce`.
   */
  nonce?: string | ((nonce: string | undefined) => boolean)
  /** Where `jti`s are remembered; checked last, so only otherwise valid proofs are recorded. */
  replay: DpopReplayCache
  /** The RFC 7638 thumbprint the proof's key must have (a bound token's `cnf.jkt`, a bound refresh token's key). */
  expectedJkt?: string
}

/** What a valid proof establishes. */
export interface DpopProof {
  /** The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: what `cnf.jkt` names. */
  jkt: string
  jti: string
  iat: number
  /** The proof's public key (only the members RFC 7638 hashes, plus whatever else it carried). */
  jwk: JWK
  nonce?: string
}

/** base64url(SHA-256(token)): the `ath` claim of a proof sent with `token` (RFC 9449 §4.2). */
export function accessTokenHash (token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url')
}

const UNRESERVED = /[A-Za-z0-9\-._~]/

/**
 * A URL as `htu` is compared (RFC 9449 §4.3 with RFC 3986 §6.2.2–6.2.3):
 * lower-case scheme and host, no default port, percent-encodings upper-cased
 * and unreserved characters decoded, no query, no fragment; undefined for
 * anything but an absolute http(s) URL without credentials.
 */
export function normalizeHtu (value: string | URL): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
    const char = String.fromCharCode(Number.parseInt(escape.slice(1), 16))
    return UNRESERVED.test(char) ? char : escape.toUpperCase()
  })
  return `${url.origin}${path}`
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A proof read and its header checked, before any key is imported. */
interface ReadProof {
  alg: DpopAlgorithm
  jwk: Record<string, unknown>
  payload: Record<string, unknown>
  signingInput: string
  signature: Buffer
}

function parseObject (json: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(json)
    return isRecord(value) ? value : undefined
  } catch {
    return undefined
  }
}

/** The one proof of a `DPoP` header, its header checked before any key is imported. */
function readProof (proof: string | string[] | undefined, algorithms: ReadonlySet<string>): ReadProof {
  if (proof === undefined || proof === '') throw new DpopError('missing')
  if (Array.isArray(proof)) {
    if (proof.length !== 1) throw new DpopError('multiple')
    proof = proof[0]!
  }
  if (typeof proof !== 'string') throw new DpopError('malformed')
  if (proof.length > MAX_DPOP_PROOF_LENGTH) throw new DpopError('too_large')
  // Node joins repeated headers with ", "; no compact JWS has a comma or a space.
  if (proof.includes(',')) throw new DpopError('multiple')
  if (!JWS_COMPACT.test(proof)) throw new DpopError('malformed')
  const [headerPart, payloadPart, signaturePart] = proof.split('.') as [string, string, string]
  const headerText = Buffer.from(headerPart, 'base64url').toString('utf8')
  const payloadText = Buffer.from(payloadPart, 'base64url').toString('utf8')
  if (hasDuplicateMembers(headerText) || hasDuplicateMembers(payloadText)) throw new DpopError('duplicate')
  const header = parseObject(headerText)
  if (header === undefined) throw new DpopError('malformed')
  if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== DPOP_PROOF_TYP) throw new DpopError('typ')
  const { alg, jwk } = header
  if (typeof alg !== 'string' || !algorithms.has(alg)) throw new DpopError('algorithm')
  // No extension is understood, so any critical one refuses the proof (RFC 7515 §4.1.11).
  if ('crit' in header) throw new DpopError('malformed', 'the DPoP proof demands an extension that is not understood')
  const expected = KEY_TYPES[alg as DpopAlgorithm]
  if (!isRecord(jwk) || jwk.kty !== expected.kty || (expected.crv !== undefined && jwk.crv !== expected.crv)) throw new DpopError('jwk')
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw new DpopError('jwk', 'the DPoP proof header carries a private key')
  if (jwk.kty === 'RSA' && (typeof jwk.n !== 'string' || jwk.n.length > MAX_RSA_MODULUS_CHARS || typeof jwk.e !== 'string' || jwk.e.length > MAX_RSA_EXPONENT_CHARS)) throw new DpopError('jwk')
  // What a JWK may say of its own use (RFC 7517 §4.2–4.4): nothing that forbids verifying this algorithm's signatures.
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new DpopError('jwk', 'the DPoP proof key is not for signatures')
  if (jwk.alg !== undefined && jwk.alg !== alg) throw new DpopError('jwk', 'the DPoP proof key is for another algorithm')
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.length === 1 && jwk.key_ops[0] === 'verify')) throw new DpopError('jwk', 'the DPoP proof key is not for verifying')
  if (jwk.ext !== undefined && typeof jwk.ext !== 'boolean') throw new DpopError('jwk')
  const payload = parseObject(payloadText)
  if (payload === undefined) throw new DpopError('claims', 'the DPoP proof claims are not a JSON object')
  return { alg: alg as DpopAlgorithm, jwk, payload, signingInput: `${headerPart}.${payloadPart}`, signature: Buffer.from(signaturePart, 'base64url') }
}

// The members RFC 7638 §3.2 hashes, in its (lexicographic) order: all a public key is made of.
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] }
const MIN_RSA_MODULUS_BITS = 2048
const KEY_CACHE_SIZE = 10_000
interface ProofKeyEntry { key: KeyObject, jkt: string }
// Clients sign proof after proof with one key: importing it once, keyed by the
// whole canonical key (not a kid, not a hash of it), means a cached key is only
// ever used for a proof whose header carries exactly that key.
const proofKeys = new LRUCache<string, ProofKeyEntry>({ max: KEY_CACHE_SIZE })

/** The proof key as a node:crypto public key and its RFC 7638 thumbprint; a `jwk` refusal when it is no valid key. */
function proofKeyOf (jwk: Record<string, unknown>): ProofKeyEntry {
  const members = THUMBPRINT_MEMBERS[jwk.kty as string]!
  const canonical: Record<string, string> = {}
  for (const member of members) {
    const value = jwk[member]
    if (typeof value !== 'string' || value === '') throw new DpopError('jwk')
    canonical[member] = value
  }
  const json = JSON.stringify(canonical)
  const cached = proofKeys.get(json)
  if (cached !== undefined) return cached
  let key: KeyObject
  try {
    key = createPublicKey({ key: canonical, format: 'jwk' })
  } catch (error) {
    throw new DpopError('jwk', undefined, { cause: error })
  }
  // RSA below 2048 bits is too weak for RS256/PS256 (RFC 7518 §3.3).
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_MODULUS_BITS) throw new DpopError('jwk', 'the DPoP proof RSA key is shorter than 2048 bits')
  const entry = { key, jkt: createHash('sha256').update(json).digest('base64url') }
  proofKeys.set(json, entry)
  return entry
}

/** Whether `signature` is `alg`'s signature of `data` by `key` (RFC 7518 §3, RFC 8037 §3.1). */
function verifiesSignature (alg: DpopAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    switch (alg) {
      case 'ES256': return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
      case 'ES384': return verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
      case 'EdDSA': case 'Ed25519': return verify(null, data, key, signature)
      case 'RS256': return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, signature)
      case 'PS256': return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)
    }
  } catch {
    return false
  }
}

/** An optional NumericDate claim (RFC 7519 §2): absent, or a finite number. */
function numericDate (value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new DpopError('claims')
  return value
}

function checkedAlgorithms (algorithms: readonly string[] | undefined): ReadonlySet<string> {
  if (algorithms === undefined) return DEFAULT_ALGORITHMS
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((alg) => !(DPOP_ALGORITHMS as readonly string[]).includes(alg))) {
    throw new Error(`checkDpopProof: options.algorithms must be a non-empty subset of ${DPOP_ALGORITHMS.join(', ')}`)
  }
  return new Set(algorithms)
}
const DEFAULT_ALGORITHMS: ReadonlySet<string> = new Set(DPOP_ALGORITHMS)

/** A non-negative number of seconds, or the default. */
function seconds (value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`options.${name} must be seconds ≥ 0`)
  return value
}

/**
 * Checks a DPoP proof as RFC 9449 §4.3 says and returns what it proves, or
 * throws a {@link DpopError}: exactly one proof, a compact JWS of at most
 * {@link MAX_DPOP_PROOF_LENGTH} characters naming no member twice, `typ`
 * dpop+jwt, an accepted asymmetric `alg`, a public `jwk` of the key type
 * the algorithm needs, a valid signature, a `jti`, `htm` and `htu` matching
 * the request, `iat` within the window, `ath` when an access token comes
 * with it, the nonce when one is demanded, the expected key when one is
 * bound, and last a `jti` not seen before.
 *
 * @example
 * const proof = await checkDpopProof(req.headers.dpop, { method: 'GET', url: 'https://api.example.com/me', accessToken, replay, expectedJkt: claims.cnf.jkt })
 */
export async function checkDpopProof (proof: string | string[] | undefined, opts: DpopProofOptions): Promise<DpopProof> {
  const algorithms = checkedAlgorithms(opts.algorithms)
  const maxAge = seconds(opts.maxAgeSeconds, 60, 'maxAgeSeconds')
  const skew = seconds(opts.clockSkewSeconds, 5, 'clockSkewSeconds')
  if (typeof opts.replay?.remember !== 'function') throw new Error('checkDpopProof: options.replay must be a DpopReplayCache')
  // The URL is the request's (its Host header, say): one that is no URL is a refusal, not a crash.
  const url = normalizeHtu(opts.url)
  if (url === undefined) throw new DpopError('htu', 'the request URL is not an absolute http: or https: URL')
  const nowMs = (opts.now ?? Date.now)()

  const { alg, jwk, payload, signingInput, signature } = readProof(proof, algorithms)
  const { key, jkt } = proofKeyOf(jwk)
  if (!verifiesSignature(alg, key, Buffer.from(signingInput, 'ascii'), signature)) throw new DpopError('signature')
  const nowSeconds = nowMs / 1000
  const nbf = numericDate(payload.nbf)
  const exp = numericDate(payload.exp)
  if ((nbf !== undefined && nbf > nowSeconds + skew) || (exp !== undefined && exp <= nowSeconds - skew)) throw new DpopError('claims')

  const { jti, htm, htu, iat, ath, nonce } = payload
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw new DpopError('jti')
  if (typeof htm !== 'string' || htm !== opts.method) throw new DpopError('htm')
  if (typeof htu !== 'string' || normalizeHtu(htu) !== url) throw new DpopError('htu')
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw new DpopError('iat')
  if (iat > nowSeconds + skew || iat < nowSeconds - maxAge - skew) throw new DpopError('iat')
  if (opts.accessToken !== undefined && ath !== accessTokenHash(opts.accessToken)) throw new DpopError('ath')
  if (nonce !== undefined && (typeof nonce !== 'string' || nonce.length > MAX_NONCE_LENGTH)) throw new DpopError('claims')
  if (opts.nonce !== undefined) {
    const accepted = typeof opts.nonce === 'function' ? opts.nonce(nonce) : nonce === opts.nonce
    if (!accepted) throw new DpopError('nonce')
  }
  if (opts.expectedJkt !== undefined && jkt !== opts.expectedJkt) throw new DpopError('key')
  // Remembered until the proof could no longer pass the iat check above.
  if (!await opts.replay.remember(jti, Math.ceil(iat + maxAge + skew))) throw new DpopError('replay')
  return { jkt, jti, iat, jwk: jwk as JWK, ...(typeof nonce === 'string' ? { nonce } : {}) }
}
