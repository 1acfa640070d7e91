import { createVerifier as createJwtVerifier, type TokenError } from 'fast-jwt'
import { LRUCache } from 'lru-cache'
import {
  ACCESS_TOKEN_ALGORITHMS, ACCESS_TOKEN_TYP, REQUIRED_ACCESS_TOKEN_CLAIMS, BatonError, parseDuration, parseScope,
  scopeClaimIncludes, type AccessTokenAlgorithm, type AccessTokenClaims
} from '@baton/tokens'
import { extractCredentials } from './bearer.js'
import { checkClaims, checkLifetime, checkTokenText } from './checks.js'
import { checkDpopProof, createMemoryReplayCache, DpopError, DPOP_ALGORITHMS, type DpopAlgorithm, type DpopNonces, type DpopReplayCache } from './dpop.js'
import { rechallenge, refuseToken, VerifierError, type RefusalReason } from './errors.js'
import { createJwksKeySource, type JwksKeySource } from './jwks-key-source.js'
import { createStaticKeySource, toUsableKey, type KeySource, type PublicKeyInput, type StaticKey, type UsableKey } from './key-source.js'
import type { Logger } from './logger.js'

export interface VerifierOptions {
  /** The only `iss` accepted, e.g. `https://auth.example.com`. */
  issuer: string
  /** The audience a token must name in `aud` (a string, or an array that contains it). */
  audience: string
  /** Where the issuer publishes its public keys; fetched on first use and when an unknown `kid` arrives (rate-limited). */
  jwksUri?: string | URL
  /** Public keys at hand instead (PEM, KeyObject or JWK, each with its kid), or a function returning the current ones. */
  keys?: Iterable<StaticKey> | (() => Iterable<StaticKey>)
  /** Any other {@link KeySource}. Exactly one of `jwksUri`, `keys` and `keySource` is required. */
  keySource?: KeySource
  /** Default: every algorithm Baton issues, EdDSA and ES256. */
  algorithms?: readonly AccessTokenAlgorithm[]
  /** Leeway on `exp`, `nbf` and `iat`: seconds, or a duration such as `'5s'`. Default 5 seconds. */
  clockSkew?: number | string
  /** Scopes every token must carry (403 insufficient_scope otherwise). */
  requiredScopes?: readonly string[]
  /**
   * Whether the token has been revoked (for example {@link RevocationFeed}'s
   * `isRevoked` from `@baton/verifier/feed`); a true answer refuses it with
   * 401 invalid_token. Asked on every use, cached or not. A synchronous
   * answer keeps a repeated token free of promises.
   */
  isRevoked?: (claims: AccessTokenClaims) => boolean | PromiseLike<boolean>
  /**
   * Verified tokens remembered (LRU, at most this many and {@link MAX_CACHE_BYTES}
   * of token text) so that a repeated token skips decoding and the signature
   * check; lifetime, key presence, revocation and scopes are still checked on
   * every use. 0 turns it off. Default 10000.
   */
  cacheSize?: number
  /** Milliseconds since the epoch for the lifetime checks; tests move it instead of sleeping. */
  now?: () => number
  /** Where key-source trouble is reported; pino and Fastify loggers fit. */
  log?: Logger
  /**
   * Accept DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with
   * a `DPoP` proof from the key the token's `cnf.jkt` names. `true` for the
   * defaults, or settings. Default off: only Bearer is taken. Either way a
   * bound token sent as Bearer is refused: without the key it is worth nothing.
   */
  dpop?: boolean | DpopVerifierOptions
}

/** How a verifier checks DPoP proofs. */
export interface DpopVerifierOptions {
  /** Proof algorithms accepted and named in the challenge's `algs`; default every one of {@link DPOP_ALGORITHMS}. */
  algorithms?: readonly DpopAlgorithm[]
  /** How old (by its `iat`) a proof may be, on top of `clockSkew`: seconds or a duration. Default 60 seconds. */
  maxAge?: number | string
  /**
   * Where proof `jti`s are remembered; default a cache in this verifier's
   * memory holding `replayCacheSize` of them. Several instances behind one
   * name can share one (in Redis, say) so that a proof replayed to another
   * instance is refused too.
   */
  replay?: DpopReplayCache
  /** The in-memory replay cache's bound; default 100000 proofs (size it for the proofs one `maxAge` brings). */
  replayCacheSize?: number
  /** Server nonces ({@link createDpopNonces}): when set, every proof must carry a current one, or is answered `use_dpop_nonce` with a fresh `DPoP-Nonce`. */
  nonces?: DpopNonces
}

/** What a DPoP-scheme request brings besides its Authorization header. */
export interface RequestInfo {
  /** The request method, e.g. `GET`. */
  method: string
  /** The URL the client called (scheme, host, port, path; a query is ignored), or a function that works it out: only DPoP requests call it. */
  url: string | (() => string)
  /** The `DPoP` request header(s). */
  dpop: string | string[] | undefined
}

/**
 * Verifies Baton access tokens. Every failure is a {@link VerifierError}
 * (missing, malformed, invalid or under-scoped token) or, when keys cannot
 * be had, a 503 `BatonError`: nothing in a token causes anything else.
 */
export interface Verifier {
  /** The token's claims, or a rejection with a {@link VerifierError}. */
  verify: (token: string) => Promise<AccessTokenClaims>
  /**
   * {@link Verifier.verify} without a promise when none is needed: a token
   * verified before is answered (claims returned or refusal thrown) at once,
   * anything else returns a promise. For adapters on a hot path.
   */
  check: (token: string) => AccessTokenClaims | Promise<AccessTokenClaims>
  /**
   * The claims for an `Authorization` header value, demanding `scopes` too;
   * throws (or rejects with) the RFC 6750 refusal. Synchronous when
   * {@link Verifier.check} is. A token bound to a key (`cnf.jkt`) is refused
   * as Bearer; with the `dpop` option, `DPoP <token>` is taken too, and
   * `request` gives what its proof is checked against (RFC 9449 §7.1).
   */
  authenticate: (authorization: string | string[] | undefined, scopes?: readonly string[], request?: RequestInfo) => AccessTokenClaims | Promise<AccessTokenClaims>
  /** The proof algorithms when `authenticate` takes the DPoP scheme (the `dpop` option), else undefined; adapters then pass the request's method, URL and proof. */
  readonly dpopAlgorithms: readonly DpopAlgorithm[] | undefined
  /** True once verification keys are at hand. */
  ready: () => boolean
  /** Loads the key set now (with `jwksUri`); rejects when that fails. Other key sources resolve at once. */
  refreshKeys: () => Promise<void>
  /** Stops a key-set fetch under way; keys already loaded keep serving. */
  close: () => void
}

// Headers are capped at 16 KiB on the wire by Node; inject() and proxies are not.
const MAX_TOKEN_LENGTH = 8192
/** Upper bound on the verification cache's token text (2 bytes a character) and claims, whatever `cacheSize` says. */
export const MAX_CACHE_BYTES = 32 * 1024 * 1024
// Rough heap cost of one entry beyond its token text: the claims object and the cache's own bookkeeping.
const CACHE_ENTRY_OVERHEAD = 1024

/** What a full verification established about one exact token string. */
interface VerifiedToken {
  /** Checked once; copied for each use so that no caller can change what the next one sees. */
  claims: AccessTokenClaims
  kid: string
  /** The key exactly as the key source handed it out: the same object or string again needs no comparison. */
  key: PublicKeyInput
  /** The key it verified under: a later key set must still map `kid` to it. */
  pem: string
}

/** The failure behind a fast-jwt error, by its code. */
function reasonOf (error: unknown): RefusalReason {
  switch ((error as Partial<TokenError> | null)?.code) {
    case 'FAST_JWT_INVALID_ALGORITHM': return 'algorithm'
    case 'FAST_JWT_INVALID_TYPE': return 'typ'
    case 'FAST_JWT_INVALID_CRIT_HEADER': return 'header'
    case 'FAST_JWT_MISSING_SIGNATURE':
    case 'FAST_JWT_INVALID_SIGNATURE':
    case 'FAST_JWT_VERIFY_ERROR': return 'signature'
    case 'FAST_JWT_INVALID_CLAIM_TYPE':
    case 'FAST_JWT_INVALID_CLAIM_VALUE':
    case 'FAST_JWT_MISSING_REQUIRED_CLAIM': return 'claims'
    case 'FAST_JWT_MALFORMED':
    case 'FAST_JWT_INVALID_PAYLOAD': return 'malformed'
    case 'FAST_JWT_EXPIRED': return 'expired'
    case 'FAST_JWT_INACTIVE': return 'not_yet_valid'
    default: return 'invalid'
  }
}

/** Every scope in `scopes` must be in the claims' `scope`; else 403 insufficient_scope naming them. */
export function checkScopes (claims: AccessTokenClaims, scopes: readonly string[]): void {
  for (const scope of scopes) {
    if (!scopeClaimIncludes(claims.scope, scope)) {
      const needed = scopes.join(' ')
      throw new VerifierError('BATON_INSUFFICIENT_SCOPE', 'insufficient_scope', `the access token lacks the scope ${needed}`, { scope: needed })
    }
  }
}

/** Scopes named in code, checked once where they are named: each one RFC 6749 scope token. */
export function checkScopeNames (scopes: readonly string[], where: string): readonly string[] {
  for (const scope of scopes) {
    if (typeof scope !== 'string' || parseScope(scope)?.length !== 1) throw new Error(`${where}: "${String(scope)}" is not a single RFC 6749 scope`)
  }
  return [...scopes]
}

function isPromiseLike (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

/** The `dpop` option, checked. */
interface DpopSettings {
  algorithms: readonly DpopAlgorithm[]
  /** The challenge's `algs`. */
  algs: string
  maxAgeSeconds: number
  replay: DpopReplayCache | undefined
  replayCacheSize: number
  nonces: DpopNonces | undefined
}

interface CheckedOptions {
  algorithms: readonly AccessTokenAlgorithm[]
  skewMs: number
  dpop: DpopSettings | undefined
  keySource: KeySource
  jwks: JwksKeySource | undefined
  requiredScopes: readonly string[]
}

function checkOptions (opts: VerifierOptions): CheckedOptions {
  const fail = (path: string, expectation: string): never => { throw new Error(`createVerifier: options.${path} ${expectation}`) }
  if (typeof opts !== 'object' || opts === null) fail('', 'must be an object')
  if (typeof opts.issuer !== 'string' || opts.issuer === '') fail('issuer', 'must be a non-empty string')
  if (typeof opts.audience !== 'string' || opts.audience === '') fail('audience', 'must be a non-empty string')
  const sources = (['jwksUri', 'keys', 'keySource'] as const).filter((name) => opts[name] !== undefined)
  if (sources.length !== 1) fail(sources[1] ?? 'jwksUri', 'or keys or keySource: exactly one of them is required')
  const skew = opts.clockSkew ?? 5
  const skewSeconds = typeof skew === 'string' ? parseDuration(skew) : (Number.isFinite(skew) && skew >= 0 ? skew : undefined)
  if (skewSeconds === undefined) fail('clockSkew', 'must be seconds ≥ 0 or a duration such as "5s"')
  const algorithms = opts.algorithms ?? ACCESS_TOKEN_ALGORITHMS
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((alg) => !(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(alg))) {
    fail('algorithms', `must be a non-empty subset of ${ACCESS_TOKEN_ALGORITHMS.join(', ')}`)
  }
  if (opts.cacheSize !== undefined && !(Number.isSafeInteger(opts.cacheSize) && opts.cacheSize >= 0)) fail('cacheSize', 'must be an integer ≥ 0')
  if (opts.isRevoked !== undefined && typeof opts.isRevoked !== 'function') fail('isRevoked', 'must be a function')
  let requiredScopes: readonly string[] = []
  try {
    requiredScopes = checkScopeNames(opts.requiredScopes ?? [], 'createVerifier: options.requiredScopes')
  } catch (error) {
    fail('requiredScopes', `must list single RFC 6749 scopes (${(error as Error).message})`)
  }

  let keySource = opts.keySource
  let jwks: JwksKeySource | undefined
  if (opts.jwksUri !== undefined) {
    let url: URL | undefined
    try { url = new URL(String(opts.jwksUri)) } catch {}
    if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) fail('jwksUri', 'must be an http: or https: URL')
    jwks = createJwksKeySource({
      jwksUrl: url!.href,
      refreshWhenStale: true,
      ...(opts.log === undefined ? {} : { log: opts.log }),
      ...(opts.now === undefined ? {} : { now: opts.now })
    })
    keySource = jwks
  } else if (opts.keys !== undefined) {
    keySource = createStaticKeySource(opts.keys)
  }
  if (typeof keySource?.getKey !== 'function' || typeof keySource.ready !== 'function') fail('keySource', 'must be a KeySource')
  return { algorithms, skewMs: skewSeconds! * 1000, dpop: checkDpopOptions(opts.dpop, fail), keySource: keySource!, jwks, requiredScopes }
}

function checkDpopOptions (dpop: VerifierOptions['dpop'], fail: (path: string, expectation: string) => never): DpopSettings | undefined {
  if (dpop === undefined || dpop === false) return undefined
  const settings = dpop === true ? {} : dpop
  if (typeof settings !== 'object' || settings === null) fail('dpop', 'must be a boolean or an object')
  const algorithms = settings.algorithms ?? DPOP_ALGORITHMS
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((alg) => !(DPOP_ALGORITHMS as readonly string[]).includes(alg))) {
    fail('dpop.algorithms', `must be a non-empty subset of ${DPOP_ALGORITHMS.join(', ')}`)
  }
  const maxAge = settings.maxAge ?? 60
  const maxAgeSeconds = typeof maxAge === 'string' ? parseDuration(maxAge) : (Number.isFinite(maxAge) && maxAge > 0 ? maxAge : undefined)
  if (maxAgeSeconds === undefined) fail('dpop.maxAge', 'must be seconds > 0 or a duration such as "60s"')
  if (settings.replay !== undefined && typeof settings.replay?.remember !== 'function') fail('dpop.replay', 'must be a DpopReplayCache')
  const replayCacheSize = settings.replayCacheSize ?? 100_000
  if (!Number.isSafeInteger(replayCacheSize) || replayCacheSize < 1) fail('dpop.replayCacheSize', 'must be an integer ≥ 1')
  const nonces = settings.nonces
  if (nonces !== undefined && (typeof nonces?.current !== 'function' || typeof nonces.accepts !== 'function')) fail('dpop.nonces', 'must be DpopNonces')
  return { algorithms: [...algorithms], algs: algorithms.join(' '), maxAgeSeconds: maxAgeSeconds!, replay: settings.replay, replayCacheSize, nonces }
}

/** The verifier's answer to a refused proof. */
function proofRefusal (error: DpopError, nonces: DpopNonces | undefined): VerifierError {
  switch (error.reason) {
    case 'nonce': return new VerifierError('BATON_DPOP_NONCE_REQUIRED', 'dpop_nonce', error.message, { headers: { 'dpop-nonce': nonces!.current() } })
    case 'replay': return new VerifierError('BATON_DPOP_PROOF_REFUSED', 'dpop_replay', error.message)
    case 'key': return new VerifierError('BATON_DPOP_PROOF_REFUSED', 'dpop_key', error.message)
    default: return new VerifierError('BATON_DPOP_PROOF_REFUSED', 'dpop_proof', error.message, { cause: error })
  }
}

/**
 * Verifies Baton access tokens locally, with no call to the issuer per
 * request: the JWS (fast-jwt, with an algorithm allow-list bound to each
 * key's type) and, beyond what a JOSE library checks, canonical base64url,
 * no duplicate JSON members, a header of `alg`, `typ` and `kid` only,
 * `typ: at+jwt`, integer `exp`/`iat`/`nbf` with a clock-skew leeway, the
 * issuer, the audience (RFC 7519: a string or an array containing it), the
 * claims Baton relies on, then `isRevoked` and `requiredScopes`.
 *
 * @example
 * const verifier = createVerifier({ issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json' })
 * const claims = await verifier.verify(token) // rejects with a VerifierError: error.status, error.error, error.description
 */
export function createVerifier (opts: VerifierOptions): Verifier {
  const { algorithms, skewMs, dpop, keySource, jwks, requiredScopes } = checkOptions(opts)
  const { issuer, audience, isRevoked, log } = opts
  const allowedAlgorithms = new Set<string>(algorithms)
  const now = opts.now ?? Date.now
  const peekKey = keySource.peekKey?.bind(keySource)
  /** The key at hand without waiting, or undefined: then `getKey` decides (and reports a failing source as a 503). */
  function peek (kid: string): PublicKeyInput | undefined {
    try {
      return peekKey?.(kid)
    } catch {
      return undefined
    }
  }

  // Every key form becomes one stable PEM, converted once per string or object.
  const fromObjects = new WeakMap<object, UsableKey | null>()
  const fromPems = new Map<string, UsableKey | null>()
  function usableKey (key: PublicKeyInput): UsableKey | undefined {
    let usable = typeof key === 'string' ? fromPems.get(key) : fromObjects.get(key)
    if (usable === undefined) {
      usable = toUsableKey(key) ?? null
      if (typeof key === 'string') {
        if (fromPems.size >= 256) fromPems.clear()
        fromPems.set(key, usable)
      } else {
        fromObjects.set(key, usable)
      }
    }
    return usable ?? undefined
  }

  // fast-jwt checks the signature, `iss`, `aud`, `typ` and the required claims; one verifier per key, built once.
  const jwtVerifiers = new Map<string, (token: string) => unknown>()
  function jwtVerifierFor (key: UsableKey): (token: string) => unknown {
    let verifyJwt = jwtVerifiers.get(key.pem)
    if (verifyJwt === undefined) {
      if (jwtVerifiers.size >= 256) jwtVerifiers.clear()
      verifyJwt = createJwtVerifier({
        key: key.pem,
        algorithms: [key.alg],
        allowedIss: issuer,
        allowedAud: audience,
        checkTyp: ACCESS_TOKEN_TYP,
        requiredClaims: [...REQUIRED_ACCESS_TOKEN_CLAIMS],
        // The lifetime is checked against `now` on every use, cached or not.
        ignoreExpiration: true,
        ignoreNotBefore: true,
        // Our own cache sits in front and also skips decoding and the text checks.
        cache: false
      })
      jwtVerifiers.set(key.pem, verifyJwt)
    }
    return verifyJwt
  }

  /** The key source's key for `kid`; its failure is a 503, never a 401 that would make clients drop their tokens. */
  async function lookUpKey (kid: string): Promise<PublicKeyInput | undefined> {
    try {
      return await keySource.getKey(kid)
    } catch (error) {
      log?.error({ err: error }, 'the key source failed')
      throw new BatonError('BATON_UNAVAILABLE', 'verification keys are unavailable', { cause: error })
    }
  }

  const cacheSize = opts.cacheSize ?? 10_000
  // Keyed by the exact token string: another spelling of the same token is a miss and is checked afresh.
  const verified = cacheSize === 0
    ? undefined
    : new LRUCache<string, VerifiedToken>({
      max: cacheSize,
      maxSize: MAX_CACHE_BYTES,
      sizeCalculation: (_entry, token) => 2 * token.length + CACHE_ENTRY_OVERHEAD
    })

  /** The per-use checks: lifetime, revocation, scopes. Synchronous unless `isRevoked` answers with a promise. */
  function admit (token: string, claims: AccessTokenClaims): AccessTokenClaims | Promise<AccessTokenClaims> {
    try {
      checkLifetime(claims, now(), skewMs)
    } catch (error) {
      // Expired (or not yet valid): no point keeping it; the next use is checked afresh.
      verified?.delete(token)
      throw error
    }
    const copy = { ...claims }
    if (isRevoked !== undefined) {
      const revoked = isRevoked(copy)
      if (isPromiseLike(revoked)) return Promise.resolve(revoked).then((answer) => finish(copy, answer))
      return finish(copy, revoked)
    }
    if (requiredScopes.length > 0) checkScopes(copy, requiredScopes)
    return copy
  }

  function finish (claims: AccessTokenClaims, revoked: boolean): AccessTokenClaims {
    if (revoked) throw refuseToken('rejected')
    if (requiredScopes.length > 0) checkScopes(claims, requiredScopes)
    return claims
  }

  /** The full check of a token not in the cache: text, header, key, signature and claims. */
  async function verifyAfresh (token: string): Promise<AccessTokenClaims> {
    const { alg, kid } = checkTokenText(token, allowedAlgorithms)
    const key = peek(kid) ?? await lookUpKey(kid)
    if (key === undefined) throw refuseToken('unknown_kid')
    const usable = usableKey(key)
    if (usable === undefined) {
      log?.error({ kid }, 'the key source returned a key that is not an Ed25519 or P-256 public key')
      throw refuseToken('unknown_kid')
    }
    // A kid fixes the algorithm: an ES256 header naming an Ed25519 key is refused outright.
    if (usable.alg !== alg) throw refuseToken('algorithm')
    let payload: unknown
    try {
      payload = jwtVerifierFor(usable)(token)
    } catch (error) {
      throw refuseToken(reasonOf(error), undefined, error)
    }
    const claims = checkClaims(payload, issuer, audience)
    verified?.set(token, { claims, kid, key, pem: usable.pem })
    return await admit(token, claims)
  }

  /** A cached token whose key could not be confirmed without waiting: confirm it, or verify afresh. */
  async function reconfirm (token: string, entry: VerifiedToken): Promise<AccessTokenClaims> {
    const key = await lookUpKey(entry.kid)
    if (key !== undefined && (key === entry.key || usableKey(key)?.pem === entry.pem)) return await admit(token, entry.claims)
    // Retired, or the kid now names another key.
    verified?.delete(token)
    return await verifyAfresh(token)
  }

  function check (token: string): AccessTokenClaims | Promise<AccessTokenClaims> {
    if (typeof token !== 'string') throw refuseToken('malformed')
    if (token.length > MAX_TOKEN_LENGTH) throw refuseToken('too_large')
    const entry = verified?.get(token)
    if (entry === undefined) return verifyAfresh(token)
    const key = peek(entry.kid)
    if (key !== undefined && (key === entry.key || usableKey(key)?.pem === entry.pem)) return admit(token, entry.claims)
    return reconfirm(token, entry)
  }

  /** A Bearer token's claims, unless the token is bound to a key (no downgrade, RFC 9449 §7.2), with `scopes`. */
  function admitBearer (claims: AccessTokenClaims, scopes: readonly string[] | undefined): AccessTokenClaims {
    if (claims.cnf !== undefined) {
      const refusal = refuseToken('dpop_bound')
      throw dpop === undefined ? refusal : rechallenge(refusal, { dpopAlgorithms: dpop.algs })
    }
    if (scopes !== undefined && scopes.length > 0) checkScopes(claims, scopes)
    return claims
  }

  // Made on the first DPoP request: a Bearer-only service never pays for it.
  let replay = dpop?.replay
  const replayCache = (settings: DpopSettings): DpopReplayCache => {
    replay ??= createMemoryReplayCache({ max: settings.replayCacheSize, now })
    return replay
  }

  /** RFC 9449 §7.1: the token (cached like any other), bound to a key; then, every time, its proof from that key for this request. */
  async function authenticateDpop (settings: DpopSettings, token: string, scopes: readonly string[] | undefined, request: RequestInfo | undefined): Promise<AccessTokenClaims> {
    try {
      const claims = await check(token)
      const jkt = claims.cnf?.jkt
      if (jkt === undefined) throw refuseToken('not_bound')
      try {
        if (request === undefined) throw new DpopError('missing')
        await checkDpopProof(request.dpop, {
          method: request.method,
          url: typeof request.url === 'function' ? request.url() : request.url,
          accessToken: token,
          expectedJkt: jkt,
          algorithms: settings.algorithms,
          maxAgeSeconds: settings.maxAgeSeconds,
          clockSkewSeconds: skewMs / 1000,
          now,
          replay: replayCache(settings),
          ...(settings.nonces === undefined ? {} : { nonce: settings.nonces.accepts })
        })
      } catch (error) {
        if (error instanceof DpopError) throw proofRefusal(error, settings.nonces)
        // A shared replay cache that fails is an outage, never a reason to let a proof through or to tell the client its token is bad.
        log?.error({ err: error }, 'the DPoP replay cache failed')
        throw new BatonError('BATON_UNAVAILABLE', 'the DPoP replay cache is unavailable', { cause: error })
      }
      if (scopes !== undefined && scopes.length > 0) checkScopes(claims, scopes)
      return claims
    } catch (error) {
      throw error instanceof VerifierError ? rechallenge(error, { scheme: 'DPoP', dpopAlgorithms: settings.algs }) : error
    }
  }

  return {
    check,
    verify: async (token) => await check(token),
    authenticate (authorization, scopes, request) {
      let credentials
      try {
        credentials = extractCredentials(authorization, dpop !== undefined)
      } catch (error) {
        throw dpop === undefined || !(error instanceof VerifierError) ? error : rechallenge(error, { dpopAlgorithms: dpop.algs })
      }
      if (credentials.scheme === 'DPoP') return authenticateDpop(dpop!, credentials.token, scopes, request)
      const claims = check(credentials.token)
      if (claims instanceof Promise) return claims.then((value) => admitBearer(value, scopes))
      return admitBearer(claims, scopes)
    },
    dpopAlgorithms: dpop?.algorithms,
    ready: () => keySource.ready(),
    refreshKeys: async () => { await jwks?.refresh() },
    close: () => { jwks?.close() }
  }
}
