import { createPublicKey } from 'node:crypto'
import type { AccessTokenAlgorithm } from '@baton/tokens'
import type { KeySource } from './key-source.js'
import type { Logger } from './logger.js'

export interface JwksKeySourceOptions {
  jwksUrl: string
  /** Least time between two fetches caused by unknown kids; default 10 s. */
  minRefetchIntervalMs?: number
  /** Budget for one whole fetch, body included; default 2 s. */
  timeoutMs?: number
  /** Keys kept from one key set; further ones are ignored. Default 16. */
  maxKeys?: number
  /** Largest key-set body read; default 64 KiB. */
  maxBytes?: number
  log?: Logger
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  now?: () => number
  /**
   * Fetch the key set again in the background once it is older than its
   * `Cache-Control: max-age` (or `staleAfterMs` when it came without one),
   * on the next lookup, while the keys at hand keep serving. For an owner
   * that does not refresh on a schedule of its own. Default false.
   */
  refreshWhenStale?: boolean
  /** With `refreshWhenStale`: the age of a key set that came without a max-age at which it is refetched; default 10 minutes. */
  staleAfterMs?: number
}

/** A {@link KeySource} over a JWKS URL that its owner can refresh and must close. */
export interface JwksKeySource extends KeySource {
  /** Fetches the key set now (joining a fetch already under way); rejects when that fails, keeping the previous keys. */
  refresh: () => Promise<void>
  /** Aborts a fetch under way; afterwards only keys already loaded are served. */
  close: () => void
}

const KID = /^[\x21-\x7E]{1,256}$/
// Even a key set the issuer says not to cache is fetched for unknown kids at most this often.
const STALE_REFETCH_FLOOR_MS = 1000
// Members that only a private or symmetric JWK carries (RFC 7518 §6).
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

type ImportedKey = { kid: string, pem: string } | { skipped: string }

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** One JWK to SPKI PEM, or why Baton will not verify with it. */
function importJwk (jwk: unknown): ImportedKey {
  if (!isRecord(jwk)) return { skipped: 'not an object' }
  if (typeof jwk.kid !== 'string' || !KID.test(jwk.kid)) return { skipped: 'no usable kid' }
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) return { skipped: 'holds a private part' }
  if (jwk.use !== undefined && jwk.use !== 'sig') return { skipped: 'not a signing key' }
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) {
    return { skipped: 'key_ops exclude verify' }
  }
  let alg: AccessTokenAlgorithm
  let members: Record<string, string>
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && typeof jwk.x === 'string') {
    alg = 'EdDSA'
    members = { kty: 'OKP', crv: 'Ed25519', x: jwk.x }
  } else if (jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.x === 'string' && typeof jwk.y === 'string') {
    alg = 'ES256'
    members = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }
  } else {
    return { skipped: 'not an Ed25519 or P-256 key' }
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) return { skipped: `alg is not ${alg}` }
  try {
    // Only the members that define the key: nothing else in the JWK reaches OpenSSL.
    const key = createPublicKey({ key: members, format: 'jwk' })
    return { kid: jwk.kid, pem: key.export({ type: 'spki', format: 'pem' }).toString() }
  } catch {
    return { skipped: 'does not parse' }
  }
}

/** The freshness lifetime the issuer gave a key set (ms); undefined: it said nothing. */
function maxAgeOf (cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined
  if (/(?:^|,)\s*no-(?:cache|store)\s*(?:,|$)/i.test(cacheControl)) return 0
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(cacheControl)
  return match === null ? undefined : Number(match[1]) * 1000
}

async function readBounded (response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > maxBytes) {
    await response.body?.cancel()
    throw new Error(`key set is larger than ${maxBytes} bytes`)
  }
  if (response.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel()
      throw new Error(`key set is larger than ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Public keys from a JWKS URL (RFC 7517). Only Ed25519 and P-256 signing keys
 * with a kid and no private part are kept. An unknown kid causes a refetch at
 * most once per `minRefetchIntervalMs`, or sooner once the key set is older
 * than the `Cache-Control: max-age` it came with (at most once a second), and
 * every request waiting for a key joins the one fetch under way, so a flood
 * of made-up kids costs one request per interval. A failed fetch keeps the
 * keys already loaded.
 *
 * @example
 * const keys = createJwksKeySource({ jwksUrl: 'http://127.0.0.1:3001/.well-known/jwks.json' })
 * await keys.refresh()
 */
export function createJwksKeySource (options: JwksKeySourceOptions): JwksKeySource {
  const minInterval = options.minRefetchIntervalMs ?? 10_000
  const timeoutMs = options.timeoutMs ?? 2000
  const maxKeys = options.maxKeys ?? 16
  const maxBytes = options.maxBytes ?? 64 * 1024
  const now = options.now ?? Date.now
  const log = options.log
  const closing = new AbortController()

  const refreshWhenStale = options.refreshWhenStale ?? false
  const staleAfterMs = options.staleAfterMs ?? 600_000
  let keys = new Map<string, string>()
  let lastFetchAt = Number.NEGATIVE_INFINITY
  // When the loaded key set outlives its Cache-Control max-age.
  let staleAt = Number.POSITIVE_INFINITY
  let inFlight: Promise<void> | undefined

  async function fetchKeySet (): Promise<void> {
    const startedAt = now()
    lastFetchAt = startedAt
    const signal = AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)])
    const response = await fetch(options.jwksUrl, {
      signal,
      // The operator names the key set's address; a redirect would let someone else choose the keys.
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' }
    })
    if (response.status !== 200) {
      await response.body?.cancel()
      throw new Error(`key set request answered ${response.status}`)
    }
    let body: unknown
    try {
      body = JSON.parse(await readBounded(response, maxBytes))
    } catch (error) {
      if (error instanceof SyntaxError) throw new Error('key set is not JSON', { cause: error })
      throw error
    }
    if (!isRecord(body) || !Array.isArray(body.keys)) throw new Error('key set has no "keys" array')

    const next = new Map<string, string>()
    for (const jwk of body.keys) {
      const imported = importJwk(jwk)
      if ('skipped' in imported) {
        const kid = isRecord(jwk) && typeof jwk.kid === 'string' ? jwk.kid.slice(0, 64) : undefined
        log?.warn({ kid, reason: imported.skipped }, 'ignoring a key in the key set')
        continue
      }
      if (next.has(imported.kid)) {
        log?.warn({ kid: imported.kid }, 'ignoring a second key with the same kid')
        continue
      }
      if (next.size === maxKeys) {
        log?.warn({ maxKeys }, 'key set holds more keys than allowed; ignoring the rest')
        break
      }
      next.set(imported.kid, imported.pem)
    }
    // An empty set is more likely a broken publisher than a real "trust nothing".
    if (next.size === 0) throw new Error('key set holds no usable key')
    keys = next
    const maxAge = maxAgeOf(response.headers.get('cache-control'))
    staleAt = startedAt + (maxAge ?? (refreshWhenStale ? staleAfterMs : Number.POSITIVE_INFINITY))
    log?.info({ kids: [...next.keys()] }, 'verification keys loaded')
  }

  function refetchAllowed (): boolean {
    const sinceLast = now() - lastFetchAt
    if (sinceLast >= minInterval) return true
    // Past its max-age the key set may lack a key the issuer published since and
    // now signs with (Baton publishes a key that long before it signs with it).
    return now() >= staleAt && sinceLast >= STALE_REFETCH_FLOOR_MS
  }

  function refresh (): Promise<void> {
    if (closing.signal.aborted) return Promise.reject(new Error('key source is closed'))
    inFlight ??= fetchKeySet().finally(() => { inFlight = undefined })
    return inFlight
  }

  function refreshInBackground (): void {
    if (inFlight !== undefined || closing.signal.aborted || now() < staleAt || now() - lastFetchAt < STALE_REFETCH_FLOOR_MS) return
    refresh().catch((error: unknown) => {
      log?.warn({ err: { message: (error as Error).message }, jwksUrl: options.jwksUrl }, 'key set refetch failed; keeping the previous keys')
    })
  }

  return {
    peekKey (kid) {
      if (refreshWhenStale) refreshInBackground()
      return keys.get(kid)
    },
    async getKey (kid) {
      if (refreshWhenStale) refreshInBackground()
      const known = keys.get(kid)
      if (known !== undefined || closing.signal.aborted) return known
      if (inFlight === undefined && !refetchAllowed()) return undefined
      try {
        await refresh()
      } catch (error) {
        log?.warn({ err: { message: (error as Error).message }, jwksUrl: options.jwksUrl }, 'key set refetch failed; keeping the previous keys')
      }
      return keys.get(kid)
    },
    ready: () => keys.size > 0,
    refresh,
    close: () => { closing.abort() }
  }
}
