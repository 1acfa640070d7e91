import { SettingError } from '../errors.js'
import type { ClientConfig } from './clients.js'

/**
 * An origin exactly as a browser writes it in `Origin` (RFC 6454):
 * `scheme://host[:port]`, lower case, no default port, no path. Anything
 * else could never match a request, so it is refused with the value it
 * probably meant.
 */
export function parseOrigin (value: string, path: string): string {
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {}
  const meant = url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && !value.includes('*') ? url.origin : undefined
  if (meant !== value) {
    const hint = meant === undefined ? '' : ` (did you mean "${meant}"?)`
    throw new SettingError(path, `"${value.slice(0, 100)}" is not an exact origin: scheme://host[:port] with http or https, no path, no wildcard${hint}`)
  }
  return value
}

/** CORS_ORIGINS: a comma-separated list of exact origins, possibly empty. */
export function parseOriginList (value: string, path: string): readonly string[] {
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  return Object.freeze([...new Set(entries.map((entry) => parseOrigin(entry, path)))])
}

/** A request as the CSRF defence of cookie mode sees it. */
export interface BrowserRequest {
  /** The `Origin` header, if any. */
  origin: string | undefined
  /** Whether the `X-Baton-Client` header is there: a cross-site form cannot send one. */
  clientHeader: boolean
}

/**
 * Which pages may call the auth-service: CORS (with credentials) for the
 * origins of CORS_ORIGINS, and for a cookie-mode client the CSRF defence of
 * every request that reads or writes its cookie.
 */
export class OriginPolicy {
  readonly #corsOrigins: ReadonlySet<string>

  constructor (corsOrigins: readonly string[]) {
    this.#corsOrigins = new Set(corsOrigins)
  }

  /** Whether a page of `origin` may read the auth-service's answers, credentials included. */
  allowsCors (origin: string | undefined): boolean {
    return origin !== undefined && this.#corsOrigins.has(origin)
  }

  /**
   * Why a request of a cookie-mode client must be refused, or undefined: the
   * browser attaches the cookie to any request to the auth-service, so only
   * a page of an allowed origin that could set a custom header may use it.
   */
  cookieRequestRefusal (client: ClientConfig, request: BrowserRequest): string | undefined {
    const { origin } = request
    const allowed = origin !== undefined && (client.allowedOrigins === undefined ? this.#corsOrigins.has(origin) : client.allowedOrigins.includes(origin))
    if (!allowed) {
      return `a ${client.client_id} request must come from a page of one of its allowed origins (Origin header)`
    }
    if (!request.clientHeader) return 'a cookie-mode request needs the X-Baton-Client header'
    return undefined
  }
}
