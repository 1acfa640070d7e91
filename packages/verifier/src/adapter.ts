// What every adapter does with a request, written once.
import type { AccessTokenClaims } from '@baton/tokens'
import { rechallenge, VerifierError } from './errors.js'
import { checkScopeNames, checkScopes, createVerifier, type RequestInfo, type Verifier, type VerifierOptions } from './verifier.js'

/** What every adapter takes besides the verifier's own options. */
export interface AdapterExtras {
  /** The realm of the `WWW-Authenticate` challenge; default `baton`. */
  realm?: string
  /** Told of every refused request (its `reason`, `status`, `error`), for metrics or logs. */
  onRefused?: (error: VerifierError) => void
  /**
   * The URL clients call this API at, e.g. `https://api.example.com` or
   * `https://example.com/api` (a path prefix a proxy strips): a DPoP proof's
   * `htu` must name it followed by the request's path. Without it the URL is
   * worked out from the request: its scheme (Fastify's `trustProxy` and
   * Express's `trust proxy` settings apply) and its `Host` header (Fastify:
   * `X-Forwarded-Host` under `trustProxy`). Set it behind a proxy that
   * changes the host or the path.
   */
  publicUrl?: string | URL
}

/** An adapter's options: the verifier's own, or a verifier made elsewhere (then the caller closes it). */
export type AdapterOptions = (VerifierOptions | { verifier: Verifier }) & AdapterExtras

export interface AdapterSetup {
  verifier: Verifier
  /** Whether the adapter made the verifier, and so closes it. */
  owned: boolean
  realm: string
  /** `publicUrl` without a trailing slash, or undefined. */
  publicBase: string | undefined
  /** Tells `onRefused` of a refusal; other errors pass silently. */
  noteRefusal: (error: unknown) => void
}

export function adapterVerifier (options: AdapterOptions, defaults: Partial<VerifierOptions> = {}): AdapterSetup {
  const { realm = 'baton', onRefused } = options
  if (onRefused !== undefined && typeof onRefused !== 'function') throw new Error('options.onRefused must be a function')
  const noteRefusal = onRefused === undefined ? () => {} : (error: unknown) => { if (error instanceof VerifierError) onRefused(error) }
  const publicBase = checkPublicUrl(options.publicUrl)
  if ('verifier' in options) return { verifier: options.verifier, owned: false, realm, publicBase, noteRefusal }
  const { realm: _realm, onRefused: _onRefused, publicUrl: _publicUrl, ...verifierOptions } = options
  return { verifier: createVerifier({ ...defaults, ...verifierOptions }), owned: true, realm, publicBase, noteRefusal }
}

function checkPublicUrl (publicUrl: string | URL | undefined): string | undefined {
  if (publicUrl === undefined) return undefined
  let url: URL | undefined
  try { url = new URL(publicUrl) } catch {}
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new Error('options.publicUrl must be an http: or https: URL without credentials, query or fragment')
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

// RFC 9110 §7.2 with RFC 3986 §3.2.2–3.2.3: a name of unreserved characters (a container's `api_1` too),
// an IPv4 address or a bracketed IPv6 one, and a port.
const HOST_HEADER = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/

/**
 * `scheme://host` for a request's Host header, or undefined when there is
 * none or it is no host: a `/`, `?`, `#`, `\` or `@` in it would end the
 * authority early and move the path a proof's `htu` is compared with, so
 * that a proof made out to another path (`/`, or `/other/me`) passed here.
 */
export function requestOrigin (scheme: string, host: string | undefined): string | undefined {
  return host !== undefined && HOST_HEADER.test(host) ? `${scheme}://${host}` : undefined
}

/**
 * The URL a request was made to, for a DPoP proof's `htu`: `base` (the
 * public URL, or the scheme and host the request came with) followed by the
 * path the request line names. Without a base, no URL: the proof check
 * refuses it as not an absolute URL.
 */
export function requestUrl (base: string | undefined, target: string | undefined): string {
  if (base === undefined) return ''
  if (target === undefined || target === '') return `${base}/`
  if (target.startsWith('/')) return `${base}${target}`
  // An absolute-form target (RFC 9112 §3.2.2), as some proxies send: its path.
  try {
    return `${base}${new URL(target).pathname}`
  } catch {
    return `${base}/${target}`
  }
}

/** Whether an Authorization header names the DPoP scheme: a Bearer request (the hot path) is told apart by its first character. */
function isDpopScheme (authorization: string | string[] | undefined): boolean {
  return typeof authorization === 'string' && (authorization.charCodeAt(0) | 0x20) === 0x64 && /^dpop[ \t]/i.test(authorization)
}

/** The scopes a `requireScope(...)` names, checked when the route is declared. */
export function requiredScopeList (scopes: readonly string[]): readonly string[] {
  if (scopes.length === 0) throw new Error('requireScope: name at least one scope')
  return checkScopeNames(scopes, 'requireScope')
}

/** The scopes of claims an earlier hook admitted; a bound token came with the DPoP scheme, so its refusal is a DPoP challenge. */
function checkExistingScopes (verifier: Verifier, claims: AccessTokenClaims, scopes: readonly string[]): void {
  try {
    checkScopes(claims, scopes)
  } catch (error) {
    const algorithms = verifier.dpopAlgorithms
    if (claims.cnf === undefined || algorithms === undefined || !(error instanceof VerifierError)) throw error
    throw rechallenge(error, { scheme: 'DPoP', dpopAlgorithms: algorithms.join(' ') })
  }
}

/**
 * Authenticates one request and calls `admit` with the claims or `refuse`
 * with the error, synchronously when the verifier can answer at once. With
 * `scopes`, a request an earlier hook authenticated (`existing`) only has
 * its scopes checked. `describe(request)` tells a DPoP request's method,
 * URL and proof; it is called for DPoP requests only, so a Bearer request
 * costs nothing more than it did before DPoP.
 */
export function authenticateRequest<R> (
  verifier: Verifier,
  existing: AccessTokenClaims | null | undefined,
  authorization: string | string[] | undefined,
  scopes: readonly string[] | undefined,
  admit: (claims: AccessTokenClaims) => void,
  refuse: (error: unknown) => void,
  request?: R,
  describe?: (request: R) => RequestInfo
): void {
  let claims: AccessTokenClaims | Promise<AccessTokenClaims>
  try {
    if (existing !== null && existing !== undefined && scopes !== undefined) {
      checkExistingScopes(verifier, existing, scopes)
      claims = existing
    } else {
      const info = describe !== undefined && verifier.dpopAlgorithms !== undefined && isDpopScheme(authorization) ? describe(request!) : undefined
      claims = verifier.authenticate(authorization, scopes, info)
    }
  } catch (error) {
    refuse(error)
    return
  }
  if (claims instanceof Promise) claims.then(admit, refuse)
  else admit(claims)
}
