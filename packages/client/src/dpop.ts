// DPoP (RFC 9449) for the client: a P-256 key pair that signs a proof for
// every request that carries a token, so a token copied out of a log, a
// proxy or a compromised page is useless without the key. WebCrypto only
// (browsers and Node 22+ have the same `crypto.subtle`), no dependency: an
// ES256 JWS is a JSON header and payload and what ECDSA P-256 signs, raw
// r||s, which is what WebCrypto returns.
import { BatonClientError } from './errors.js'

/** The one algorithm the client signs with: ES256 (ECDSA P-256, SHA-256), the one every DPoP server accepts. */
export const DPOP_ALGORITHM = 'ES256'

/**
 * Where the client keeps its DPoP key pair: one key per issuer and client,
 * reused across reloads and shared by every tab, since all of them present
 * the same tokens and the tokens are bound to one key.
 *
 * `dpopKeyPair(name)` returns the pair kept under `name`, made with
 * `generateDpopKeyPair` on first use. Calls that race (two tabs, two
 * processes) must all get the same pair.
 *
 * @example
 * // A key the app made itself (in a platform keystore, say):
 * const keyStore: DpopKeyStore = { dpopKeyPair: async () => myKeyPair }
 * createClient({ issuer, dpop: { keyStore } })
 */
export interface DpopKeyStore {
  dpopKeyPair: (name: string) => Promise<CryptoKeyPair>
}

/** The `dpop` option of `createClient`: `true` for the platform's default key store, or a key store of your own. */
export type DpopOption = boolean | { keyStore?: DpopKeyStore }

function subtle (): SubtleCrypto {
  const crypto = (globalThis as { crypto?: Crypto }).crypto
  if (crypto?.subtle === undefined) {
    throw new BatonClientError('invalid_options', 'dpop needs WebCrypto: in a browser, a secure context (https, or http://localhost)')
  }
  return crypto.subtle
}

/**
 * A new ES256 key pair for DPoP. Non-extractable by default: the private key
 * can sign, and nothing (no script, no extension reading the page's storage)
 * can read it out. Only a store that must write the key somewhere (a file)
 * asks for an extractable one.
 */
export async function generateDpopKeyPair (options: { extractable?: boolean } = {}): Promise<CryptoKeyPair> {
  return await subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, options.extractable ?? false, ['sign'])
}

/**
 * The key pair `load` gives for `name`, loaded once and shared by every
 * caller meanwhile (they must all sign with one key); a load that failed is
 * tried again by the next caller.
 */
export async function loadOnce (loaded: Map<string, Promise<CryptoKeyPair>>, name: string, load: () => Promise<CryptoKeyPair>): Promise<CryptoKeyPair> {
  let pair = loaded.get(name)
  if (pair === undefined) {
    loaded.set(name, pair = load())
    pair.catch(() => { loaded.delete(name) })
  }
  return await pair
}

/** Keeps key pairs in this object only: gone with the page or the process. The default in Node. */
export class MemoryKeyStore implements DpopKeyStore {
  readonly #pairs = new Map<string, Promise<CryptoKeyPair>>()

  async dpopKeyPair (name: string): Promise<CryptoKeyPair> {
    return await loadOnce(this.#pairs, name, async () => await generateDpopKeyPair())
  }
}

const DATABASE = 'baton-dpop'
const STORE = 'keys'

function request<T> (operation: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    operation.onsuccess = () => { resolve(operation.result) }
    operation.onerror = () => { reject(operation.error ?? new Error('IndexedDB request failed')) }
  })
}

/**
 * Keeps key pairs in IndexedDB (database `baton-dpop`): the `CryptoKeyPair`
 * itself, which the browser stores as it is, non-extractable, so the key
 * survives reloads and every tab of the origin uses the same one. The
 * default in browsers.
 *
 * Two tabs that find no key at once each make one, then put theirs in one
 * read-write transaction that first looks again; IndexedDB runs such
 * transactions one after the other across tabs, so the first one's key wins
 * and the second tab takes it.
 */
export class IndexedDbKeyStore implements DpopKeyStore {
  #database: Promise<IDBDatabase> | undefined
  readonly #loaded = new Map<string, Promise<CryptoKeyPair>>()

  async #open (): Promise<IDBDatabase> {
    this.#database ??= (async () => {
      const indexedDB = (globalThis as { indexedDB?: IDBFactory }).indexedDB
      if (indexedDB === undefined) throw new BatonClientError('invalid_options', 'dpop: this platform has no IndexedDB to keep the key in; give dpop.keyStore')
      const opening = indexedDB.open(DATABASE, 1)
      opening.onupgradeneeded = () => { opening.result.createObjectStore(STORE) }
      const database = await request(opening)
      // Another tab's newer version of this code may need the database: step aside rather than block it.
      database.onversionchange = () => { database.close(); this.#database = undefined }
      return database
    })()
    try {
      return await this.#database
    } catch (error) {
      this.#database = undefined
      throw error
    }
  }

  async #load (name: string): Promise<CryptoKeyPair> {
    const database = await this.#open()
    const kept = await request(database.transaction(STORE, 'readonly').objectStore(STORE).get(name)) as CryptoKeyPair | undefined
    if (kept !== undefined) return kept
    // Made before the transaction: an await on anything but IndexedDB inside it would let it commit early.
    const made = await generateDpopKeyPair()
    const transaction = database.transaction(STORE, 'readwrite')
    const store = transaction.objectStore(STORE)
    const winner = await request(store.get(name)) as CryptoKeyPair | undefined
    if (winner === undefined) store.put(made, name)
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => { resolve() }
      transaction.onerror = () => { reject(transaction.error ?? new Error('IndexedDB transaction failed')) }
      transaction.onabort = () => { reject(transaction.error ?? new Error('IndexedDB transaction aborted')) }
    })
    return winner ?? made
  }

  async dpopKeyPair (name: string): Promise<CryptoKeyPair> {
    return await loadOnce(this.#loaded, name, async () => await this.#load(name))
  }
}

/** Whether `value` keeps DPoP keys too (a token store may: `FileTokenStore` does). */
export function isDpopKeyStore (value: unknown): value is DpopKeyStore {
  return typeof (value as Partial<DpopKeyStore> | undefined)?.dpopKeyPair === 'function'
}

function base64url (bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

const encoder = new TextEncoder()

function encodeJson (value: unknown): string {
  return base64url(encoder.encode(JSON.stringify(value)))
}

/** The public half of a P-256 key as an RFC 7517 JWK: the members RFC 7638 hashes, nothing else. */
export interface PublicJwk {
  kty: 'EC'
  crv: 'P-256'
  x: string
  y: string
}

/** `ath`: base64url(SHA-256(access token)), which ties a proof to the token it is sent with. */
export async function accessTokenHash (accessToken: string): Promise<string> {
  return base64url(new Uint8Array(await subtle().digest('SHA-256', encoder.encode(accessToken))))
}

/** `htu`: the target URI without its query and fragment (RFC 9449 §4.2). */
export function proofUri (url: string | URL): string {
  const target = new URL(url)
  return `${target.origin}${target.pathname}`
}

/** What one proof says: the request it is for, and, for an API call, the token it goes with. */
export interface ProofClaims {
  method: string
  url: string | URL
  accessToken?: string
  nonce?: string
  /** Seconds since the epoch. */
  issuedAt: number
}

/** Signs DPoP proofs with one key pair. */
export class DpopSigner {
  readonly #keyPair: CryptoKeyPair
  #jwk: Promise<PublicJwk> | undefined

  constructor (keyPair: CryptoKeyPair) {
    this.#keyPair = keyPair
  }

  /** The public key as it goes into every proof's header (a public key exports even from a non-extractable pair). */
  async publicJwk (): Promise<PublicJwk> {
    this.#jwk ??= subtle().exportKey('jwk', this.#keyPair.publicKey).then(({ x, y }) => ({ kty: 'EC', crv: 'P-256', x: x!, y: y! }))
    return await this.#jwk
  }

  /** The RFC 7638 SHA-256 thumbprint of the public key: what a bound token's `cnf.jkt` names. */
  async thumbprint (): Promise<string> {
    const { crv, kty, x, y } = await this.publicJwk()
    // RFC 7638: the required members only, in lexicographic order, no white space.
    return base64url(new Uint8Array(await subtle().digest('SHA-256', encoder.encode(JSON.stringify({ crv, kty, x, y })))))
  }

  /** Whether the private key can be read out: false for the keys the client makes in a browser. */
  get extractable (): boolean {
    return this.#keyPair.privateKey.extractable
  }

  /** A fresh proof (a new `jti` every time): the value of a `DPoP` header. */
  async proof (claims: ProofClaims): Promise<string> {
    const header = { typ: 'dpop+jwt', alg: DPOP_ALGORITHM, jwk: await this.publicJwk() }
    const payload = {
      jti: base64url(crypto.getRandomValues(new Uint8Array(16))),
      htm: claims.method.toUpperCase(),
      htu: proofUri(claims.url),
      iat: claims.issuedAt,
      ...(claims.accessToken === undefined ? {} : { ath: await accessTokenHash(claims.accessToken) }),
      ...(claims.nonce === undefined ? {} : { nonce: claims.nonce })
    }
    const input = `${encodeJson(header)}.${encodeJson(payload)}`
    const signature = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, this.#keyPair.privateKey, encoder.encode(input))
    return `${input}.${base64url(new Uint8Array(signature))}`
  }
}

/** The latest `DPoP-Nonce` each origin gave (RFC 9449 §8–9): the next proof to that origin carries it. */
export class NonceBook {
  readonly #nonces = new Map<string, string>()

  get (url: string | URL): string | undefined {
    return this.#nonces.get(new URL(url).origin)
  }

  /** Keeps the nonce an answer brings; true when it brought one. */
  remember (url: string | URL, response: Response): boolean {
    const nonce = response.headers.get('dpop-nonce')
    if (nonce === null || nonce === '') return false
    this.#nonces.set(new URL(url).origin, nonce)
    return true
  }
}

/**
 * Whether a protected resource's 401 asks for a proof with a new nonce:
 * `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a `DPoP-Nonce`.
 */
export function isResourceNonceChallenge (response: Response): boolean {
  if (response.status !== 401 || !response.headers.has('dpop-nonce')) return false
  return /(^|,)\s*DPoP\b[^]*\berror\s*=\s*"?use_dpop_nonce"?/i.test(response.headers.get('www-authenticate') ?? '')
}

/** Whether a token endpoint's 400 asks for a proof with a new nonce: `{error: "use_dpop_nonce"}` and a `DPoP-Nonce`. */
export async function isTokenEndpointNonceChallenge (response: Response): Promise<boolean> {
  if (response.status !== 400 || !response.headers.has('dpop-nonce')) return false
  const body = await response.clone().json().catch(() => undefined) as { error?: unknown } | undefined
  return body?.error === 'use_dpop_nonce'
}
