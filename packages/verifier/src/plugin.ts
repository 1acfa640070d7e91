import type { KeyObject } from 'node:crypto'
import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import { LRUCache } from 'lru-cache'
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { Counter, type Registry } from 'prom-client'
import {
  ACCESS_TOKEN_ALGORITHMS, ACCESS_TOKEN_TYP, REQUIRED_ACCESS_TOKEN_CLAIMS, BatonError, parseScope,
  scopeClaimIncludes, type AccessTokenAlgorithm, type AccessTokenClaims
} from '@baton/tokens'
import { extractBearerToken } from './bearer.js'
import { toUsableKey, type KeySource, type UsableKey } from './key-source.js'

export interface VerifierOptions {
  keySource: KeySource
  /** The only `iss` accepted. */
  issuer: string
  /** The `aud` a token must carry. */
  audience: string
  /** Leeway on `exp`, `nbf` and `iat`. */
  clockSkewSeconds: number
  /** Default ACCESS_TOKEN_ALGORITHMS. */
  algorithms?: readonly AccessTokenAlgorithm[]
  /** Milliseconds since the epoch for the lifetime checks; tests move it instead of sleeping. */
  now?: () => number
  /**
   * Verified tokens remembered (LRU, at most this many and {@link MAX_CACHE_BYTES}
   * of token text) so that a repeated token skips decoding and the signature
   * check; lifetime, key presence and `checkToken` are still checked on every
   * request. 0 turns it off. Default 10000.
   */
  cacheSize?: number
  /** Optional extra check after signature+claims verify, e.g. the auth-service asks Redis whether the session still lives. Return a reason string to reject with invalid_token. */
  checkToken?: (claims: AccessTokenClaims, request: FastifyRequest) => Promise<string | undefined> | string | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Hook (onRequest or preHandler) that admits only a valid Baton access token and sets `request.auth`. */
    authenticate: preHandlerAsyncHookHandler
    /** Hook that demands `scope` in the token (403 insufficient_scope), authenticating first if no earlier hook did. */
    requireScope: (scope: string) => preHandlerAsyncHookHandler
    /**
     * Verifies a token that arrived some other way than the Authorization
     * header (introspection, revocation) with every check `authenticate`
     * makes, `checkToken` included; throws a BatonError when it is not valid.
     */
    verifyAccessToken: (token: string, request: FastifyRequest) => Promise<AccessTokenClaims>
  }
  interface FastifyRequest {
    /** Claims of the verified access token; set by `authenticate`, null before it ran. */
    auth: AccessTokenClaims
  }
}

// Headers are capped at 16 KiB on the wire; inject() and proxies are not.
const MAX_TOKEN_LENGTH = 8192
/** Upper bound on the verification cache's token text (2 bytes a character) and claims, whatever `cacheSize` says. */
export const MAX_CACHE_BYTES = 32 * 1024 * 1024
// Rough heap cost of one entry beyond its token text: the claims object and the cache's own bookkeeping.
const CACHE_ENTRY_OVERHEAD = 1024
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** Why a token was refused: the `reason` label of `baton_verify_failures_total`, and what the client is told. */
const FAILURES = {
  missing: 'an access token is required',
  malformed: 'the access token is malformed',
  too_large: 'the access token is too large',
  algorithm: 'the access token algorithm is not accepted',
  header: 'the access token header carries a parameter Baton does not accept',
  encoding: 'the access token is not canonical base64url',
  duplicate: 'the access token names a member twice',
  typ: 'the access token type is not at+jwt',
  unknown_kid: 'the access token was signed with an unknown key',
  signature: 'the access token signature is invalid',
  claims: 'the access token claims are not valid',
  expired: 'the access token has expired',
  not_yet_valid: 'the access token is not valid yet',
  issued_in_future: 'the access token was issued in the future',
  rejected: 'the access token is no longer valid',
  invalid: 'the access token is not valid'
} as const
type FailureReason = keyof typeof FAILURES | 'insufficient_scope'

/** A refused token: a plain 401 invalid_token on the wire, with the reason kept for metrics. */
class TokenRefused extends BatonError {
  readonly reason: FailureReason
  constructor (reason: keyof typeof FAILURES, description: string = FAILURES[reason], cause?: unknown) {
    super('BATON_INVALID_TOKEN', description, { cause })
    this.reason = reason
  }
}

/**
 * Names the failure behind an error from @fastify/jwt or fast-jwt. Several
 * fast-jwt codes reach us re-wrapped as FST_JWT_AUTHORIZATION_TOKEN_INVALID,
 * whose message keeps fast-jwt's own wording.
 */
function reasonOf (error: unknown): keyof typeof FAILURES {
  const code = (error as { code?: unknown } | null)?.code
  const message = error instanceof Error ? error.message : ''
  switch (code) {
    case 'FAST_JWT_INVALID_ALGORITHM': return 'algorithm'
    case 'FAST_JWT_INVALID_TYPE': return 'typ'
    case 'FAST_JWT_MISSING_SIGNATURE':
    case 'FAST_JWT_INVALID_SIGNATURE':
    case 'FAST_JWT_VERIFY_ERROR': return 'signature'
    case 'FAST_JWT_INVALID_CLAIM_TYPE':
    case 'FAST_JWT_INVALID_CLAIM_VALUE':
    case 'FAST_JWT_MISSING_REQUIRED_CLAIM': return 'claims'
    case 'FAST_JWT_MALFORMED':
    case 'FAST_JWT_INVALID_PAYLOAD': return 'malformed'
    case 'FAST_JWT_EXPIRED':
    case 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED': return 'expired'
    case 'FAST_JWT_INACTIVE': return 'not_yet_valid'
    case 'FST_JWT_AUTHORIZATION_TOKEN_INVALID':
      if (/signature/i.test(message)) return 'signature'
      if (/claim/i.test(message)) return 'claims'
      if (/malformed|base64url|JSON|payload/i.test(message)) return 'malformed'
      return 'invalid'
    default: return 'invalid'
  }
}

function failureReason (error: unknown): FailureReason | undefined {
  if (error instanceof TokenRefused) return error.reason
  if (error instanceof BatonError && error.code === 'BATON_TOKEN_MISSING') return 'missing'
  if (error instanceof BatonError && error.code === 'BATON_TOKEN_MALFORMED') return 'malformed'
  return undefined
}

function typAccepted (typ: unknown): boolean {
  // RFC 9068 §4 with RFC 8725 §3.11: media types compare case-insensitively, "application/" may be left out.
  return typeof typ === 'string' && typ.toLowerCase().replace(/^application\//, '') === ACCESS_TOKEN_TYP
}

const isString = (value: unknown): value is string => typeof value === 'string'

// Baton writes exactly these. Anything else is refused rather than ignored:
// `jku`, `jwk`, `x5u` and `x5c` would name a key (or a place to fetch one)
// chosen by whoever made the token, and `crit` demands understanding.
const HEADER_PARAMETERS = new Set(['alg', 'typ', 'kid'])

/**
 * Whether some object in a JSON text names a member twice. Parsers
 * disagree on which one wins (JSON.parse keeps the last), so a token that
 * does it may mean different things to different readers. The text has
 * already been parsed, so only strings and brackets need tracking.
 */
export function hasDuplicateMembers (json: string): boolean {
  const objects: Array<Set<string> | undefined> = []
  let expectName = false
  for (let i = 0; i < json.length; i++) {
    const char = json[i]
    if (char === '"') {
      let end = i + 1
      while (end < json.length && json[end] !== '"') end += json[end] === '\\' ? 2 : 1
      const members = objects[objects.length - 1]
      if (expectName && members !== undefined) {
        // Compared unescaped: "s\u0075b" is "sub".
        const name = JSON.parse(json.slice(i, end + 1)) as string
        if (members.has(name)) return true
        members.add(name)
      }
      expectName = false
      i = end
    } else if (char === '{') {
      objects.push(new Set())
      expectName = true
    } else if (char === '[') {
      objects.push(undefined)
    } else if (char === '}' || char === ']') {
      objects.pop()
    } else if (char === ',') {
      expectName = objects[objects.length - 1] !== undefined
    }
  }
  return false
}

/**
 * Checks that fast-jwt's lenient decoding leaves to us: each segment is the
 * one canonical base64url spelling of its bytes (no second spelling of the
 * same signature passes as a different token), the header carries only
 * Baton's parameters, and neither JSON text repeats a member name.
 */
function checkEncoding (token: string): void {
  const segments = token.split('.')
  for (const segment of segments) {
    if (Buffer.from(segment, 'base64url').toString('base64url') !== segment) throw new TokenRefused('encoding')
  }
  const header = Buffer.from(segments[0]!, 'base64url').toString('utf8')
  const payload = Buffer.from(segments[1]!, 'base64url').toString('utf8')
  if (hasDuplicateMembers(header) || hasDuplicateMembers(payload)) throw new TokenRefused('duplicate')
}

/**
 * What fast-jwt leaves to us: the claim types Baton relies on, and the
 * lifetime, read from our clock so tests can move it and cached verifications
 * still expire on time.
 */
function checkClaims (payload: unknown, nowMs: number, skewMs: number): AccessTokenClaims {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new TokenRefused('malformed')
  const claims = payload as Record<string, unknown>
  const typesOk =
    isString(claims.iss) && isString(claims.aud) && isString(claims.sub) && claims.sub !== '' &&
    isString(claims.jti) && claims.jti !== '' && isString(claims.client_id) && isString(claims.scope) &&
    Number.isSafeInteger(claims.exp) && Number.isSafeInteger(claims.iat) &&
    (claims.nbf === undefined || Number.isSafeInteger(claims.nbf)) &&
    (claims.sid === undefined || isString(claims.sid)) &&
    (claims.username === undefined || isString(claims.username))
  if (!typesOk) throw new TokenRefused('claims')
  if (nowMs > (claims.exp as number) * 1000 + skewMs) throw new TokenRefused('expired')
  if (claims.nbf !== undefined && nowMs < (claims.nbf as number) * 1000 - skewMs) throw new TokenRefused('not_yet_valid')
  if ((claims.iat as number) * 1000 > nowMs + skewMs) throw new TokenRefused('issued_in_future')
  // A copy: the cache hands the same object to every request with this token.
  return { ...claims } as AccessTokenClaims
}

function checkOptions (opts: VerifierOptions): readonly AccessTokenAlgorithm[] {
  const fail = (path: string, expectation: string): never => { throw new Error(`verifierPlugin: options.${path} ${expectation}`) }
  if (typeof opts.keySource?.getKey !== 'function' || typeof opts.keySource.ready !== 'function') fail('keySource', 'must be a KeySource')
  if (typeof opts.issuer !== 'string' || opts.issuer === '') fail('issuer', 'must be a non-empty string')
  if (typeof opts.audience !== 'string' || opts.audience === '') fail('audience', 'must be a non-empty string')
  if (!Number.isFinite(opts.clockSkewSeconds) || opts.clockSkewSeconds < 0) fail('clockSkewSeconds', 'must be a number ≥ 0')
  const algorithms = opts.algorithms ?? ACCESS_TOKEN_ALGORITHMS
  if (algorithms.length === 0 || algorithms.some((alg) => !(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(alg))) {
    fail('algorithms', `must be a non-empty subset of ${ACCESS_TOKEN_ALGORITHMS.join(', ')}`)
  }
  if (opts.cacheSize !== undefined && !(Number.isSafeInteger(opts.cacheSize) && opts.cacheSize >= 0)) fail('cacheSize', 'must be an integer ≥ 0')
  return algorithms
}

interface DecodedToken {
  header: Record<string, unknown>
}

type VerifyAccessToken = () => Promise<unknown>

/** What a full verification established about one exact token string. */
interface VerifiedToken {
  /** The payload fast-jwt verified; never handed out, only copied by checkClaims. */
  payload: unknown
  kid: string
  /** The key it verified under: a later key set must still map `kid` to it. */
  pem: string
}

/**
 * Verifies Baton access tokens locally, on @fastify/jwt: an algorithm
 * allow-list bound to each key's type, `typ: at+jwt`, issuer, audience,
 * lifetime with a clock-skew leeway, the claims Baton relies on, then an
 * optional `checkToken`. Adds `app.authenticate` and `app.requireScope(scope)`
 * hooks and sets `request.auth`. It only throws BatonErrors: missing
 * credentials 401 with a bare challenge, a malformed header 400, any bad
 * token 401 invalid_token, a missing scope 403; nothing in a token can cause
 * a 5xx. @fastify/jwt is registered under the `baton` namespace, so an app
 * may register its own @fastify/jwt before this plugin or with a namespace.
 *
 * @example
 * await app.register(verifierPlugin, { keySource, issuer, audience: 'baton-api', clockSkewSeconds: 5 })
 * app.get('/reports', { preHandler: app.requireScope('reports:read') }, async (request) => request.auth.sub)
 */
export const verifierPlugin = fp(async function verifier (app: FastifyInstance, opts: VerifierOptions) {
  const algorithms = checkOptions(opts)
  const allowedAlgorithms = new Set<string>(algorithms)
  const skewMs = opts.clockSkewSeconds * 1000
  const now = opts.now ?? Date.now
  const keySource = opts.keySource

  // @fastify/jwt keeps one verifier (and its result cache) per key string, so
  // every key becomes one stable PEM; KeyObjects are converted once.
  const fromKeyObjects = new WeakMap<KeyObject, UsableKey | null>()
  const fromPems = new Map<string, UsableKey | null>()
  function usableKey (key: string | KeyObject): UsableKey | undefined {
    if (typeof key === 'string') {
      let usable = fromPems.get(key)
      if (usable === undefined) {
        if (fromPems.size >= 256) fromPems.clear()
        usable = toUsableKey(key) ?? null
        fromPems.set(key, usable)
      }
      return usable ?? undefined
    }
    let usable = fromKeyObjects.get(key)
    if (usable === undefined) {
      usable = toUsableKey(key) ?? null
      fromKeyObjects.set(key, usable)
    }
    return usable ?? undefined
  }

  async function keyFor (request: FastifyRequest, decoded: DecodedToken): Promise<string> {
    const { header } = decoded
    // Only reached when our cache does not know the exact token: a repeated token skips these checks with the signature.
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new TokenRefused('malformed')
    for (const name of Object.keys(header)) {
      if (!HEADER_PARAMETERS.has(name)) throw new TokenRefused('header', `the access token header parameter "${name.slice(0, 32).replace(/[^\x20-\x7e]|"|\\/g, '?')}" is not accepted`)
    }
    checkEncoding(presented.get(request) ?? '')
    if (typeof header.alg !== 'string' || !allowedAlgorithms.has(header.alg)) throw new TokenRefused('algorithm')
    if (!typAccepted(header.typ)) throw new TokenRefused('typ')
    if (typeof header.kid !== 'string' || header.kid === '' || header.kid.length > 256) throw new TokenRefused('unknown_kid')
    const key = await lookUpKey(header.kid)
    if (key === undefined) throw new TokenRefused('unknown_kid')
    const usable = usableKey(key)
    if (usable === undefined) {
      app.log.error({ kid: header.kid }, 'the key source returned a key that is not an Ed25519 or P-256 public key')
      throw new TokenRefused('unknown_kid')
    }
    // A kid fixes the algorithm: an ES256 header naming an Ed25519 key is refused outright.
    if (usable.alg !== header.alg) throw new TokenRefused('algorithm')
    verifiedWith.set(request, { kid: header.kid, pem: usable.pem })
    return usable.pem
  }

  /** Whether the key a cached token verified under is still the one the key source gives for its kid (retired keys are not). */
  async function keyStillTrusted (entry: VerifiedToken): Promise<boolean> {
    const key = await lookUpKey(entry.kid)
    return key !== undefined && usableKey(key)?.pem === entry.pem
  }

  /** The key source's key for `kid`; its failure is a 503, never a 401 that would make clients drop their tokens. */
  async function lookUpKey (kid: string): Promise<string | KeyObject | undefined> {
    try {
      return await keySource.getKey(kid)
    } catch (error) {
      app.log.error({ err: error }, 'the key source failed')
      throw new BatonError('BATON_UNAVAILABLE', 'verification keys are unavailable', { cause: error })
    }
  }

  const presented = new WeakMap<FastifyRequest, string>()
  const verifiedWith = new WeakMap<FastifyRequest, { kid: string, pem: string }>()
  const cacheSize = opts.cacheSize ?? 10_000
  // Keyed by the exact token string: another spelling of the same token is a miss and is checked afresh.
  const verified = cacheSize === 0
    ? undefined
    : new LRUCache<string, VerifiedToken>({
      max: cacheSize,
      maxSize: MAX_CACHE_BYTES,
      sizeCalculation: (_entry, token) => 2 * token.length + CACHE_ENTRY_OVERHEAD
    })
  await app.register(fastifyJwt, {
    secret: { public: keyFor as never },
    namespace: 'baton',
    jwtVerify: 'batonJwtVerify',
    jwtDecode: 'batonJwtDecode',
    jwtSign: 'batonJwtSign',
    decoratorName: 'batonJwtPayload',
    // The key callback needs the header (kid, alg, typ), not just the payload.
    decode: { complete: true },
    verify: {
      algorithms: [...algorithms],
      checkTyp: ACCESS_TOKEN_TYP,
      allowedIss: opts.issuer,
      allowedAud: opts.audience,
      requiredClaims: [...REQUIRED_ACCESS_TOKEN_CLAIMS],
      // Lifetime is checked in checkClaims against `now`, on every request, cached or not.
      ignoreExpiration: true,
      ignoreNotBefore: true,
      // Our own cache sits in front (it also skips decoding and the header checks); a second one would only hold memory.
      cache: false,
      extractToken: (request: FastifyRequest) => presented.get(request)
    }
  })

  let failures: Counter<'reason'> | undefined
  app.addHook('onReady', async function registerFailureCounter () {
    // Optional: counted only where service-kit's metricsPlugin (or anything else) decorated a prom-client registry.
    const registry = app.hasDecorator('metrics') ? (app as unknown as { metrics?: Registry }).metrics : undefined
    if (typeof registry?.registerMetric !== 'function') return
    failures = registry.getSingleMetric('baton_verify_failures_total') as Counter<'reason'> | undefined ?? new Counter({
      name: 'baton_verify_failures_total',
      help: 'Requests refused by the access-token verifier, by reason',
      labelNames: ['reason'] as const,
      registers: [registry]
    })
  })

  async function verify (request: FastifyRequest): Promise<AccessTokenClaims> {
    return await verifyToken(extractBearerToken(request.headers.authorization), request)
  }

  async function verifyToken (token: string, request: FastifyRequest): Promise<AccessTokenClaims> {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenRefused('too_large')
    let entry = verified?.get(token)
    if (entry !== undefined && !await keyStillTrusted(entry)) {
      verified?.delete(token)
      entry = undefined
    }
    if (entry === undefined) entry = await verifySignature(token, request)

    let claims: AccessTokenClaims
    try {
      claims = checkClaims(entry.payload, now(), skewMs)
    } catch (error) {
      // Expired (or not yet valid): no point keeping it; the next use is checked afresh.
      verified?.delete(token)
      throw error
    }
    if (opts.checkToken !== undefined) {
      const refusal = await opts.checkToken(claims, request)
      if (refusal !== undefined) throw new TokenRefused('rejected', String(refusal).slice(0, 200) || FAILURES.rejected)
    }
    return claims
  }

  /** The full check of a token not in the cache: encoding, header, key, signature and fast-jwt's claim checks. */
  async function verifySignature (token: string, request: FastifyRequest): Promise<VerifiedToken> {
    if (!JWS_COMPACT.test(token)) throw new TokenRefused('malformed', 'the access token is not a signed JWT')
    let payload: unknown
    let key: { kid: string, pem: string } | undefined
    presented.set(request, token)
    try {
      payload = await (request as unknown as { batonJwtVerify: VerifyAccessToken }).batonJwtVerify()
      key = verifiedWith.get(request)
    } catch (error) {
      if (error instanceof BatonError) throw error
      const reason = reasonOf(error)
      throw new TokenRefused(reason, FAILURES[reason], error)
    } finally {
      presented.delete(request)
      verifiedWith.delete(request)
    }
    if (key === undefined) throw new TokenRefused('unknown_kid')
    const entry = { payload, ...key }
    verified?.set(token, entry)
    return entry
  }

  async function authenticate (request: FastifyRequest): Promise<void> {
    try {
      request.auth = await verify(request)
    } catch (error) {
      const reason = failureReason(error)
      if (reason !== undefined) failures?.inc({ reason })
      throw error
    }
  }

  app.decorateRequest('auth', null as unknown as AccessTokenClaims)
  app.decorate('authenticate', authenticate)
  app.decorate('verifyAccessToken', verifyToken)
  app.decorate('requireScope', function requireScope (scope: string): preHandlerAsyncHookHandler {
    if (parseScope(scope)?.length !== 1) throw new Error(`requireScope: "${scope}" is not a single RFC 6749 scope`)
    return async function scopeCheck (request) {
      if ((request.auth as AccessTokenClaims | null) === null) await authenticate(request)
      if (!scopeClaimIncludes(request.auth.scope, scope)) {
        failures?.inc({ reason: 'insufficient_scope' })
        throw new BatonError('BATON_INSUFFICIENT_SCOPE', `the access token lacks the scope ${scope}`, { scope })
      }
    }
  })
}, { name: 'baton-verifier', fastify: '5.x' })
