import fp from 'fastify-plugin'
import cookie from '@fastify/cookie'
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { OriginPolicy } from '../../core/clients/origins.js'

export interface BrowserPluginOptions {
  origins: OriginPolicy
}

// What a page sends: a Bearer token or a DPoP proof, a JSON or form body, and cookie mode's CSRF header.
const ALLOWED_HEADERS = ['authorization', 'content-type', 'x-baton-client', 'dpop']
// What a page must be able to read from an answer: when to come back, why a token was refused, and the DPoP nonce to sign next.
const EXPOSED_HEADERS = ['retry-after', 'www-authenticate', 'dpop-nonce']
// Seconds a browser may reuse a preflight's answer (Chromium caps it at 7200).
const PREFLIGHT_MAX_AGE = 600
const NO_CORS: FastifyCorsOptions = { origin: false }

/** A route's URL (`/sessions/:id`) as a pattern its paths match. */
function routePattern (url: string): RegExp {
  const source = url.split('/').map((segment) => segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/')
  return new RegExp(`^${source}$`)
}

/**
 * What pages need from the routes registered after it in the same context:
 * CORS for the origins the policy allows (credentials included, and no CORS
 * header at all for any other origin), and cookies for cookie-mode clients.
 * @fastify/cors answers preflights on a catch-all OPTIONS route, so a
 * preflight is answered only for a path and method of this context's routes.
 */
export const browserPlugin = fp(async function browser (app: FastifyInstance, opts: BrowserPluginOptions) {
  const routes = new Map<string, { pattern: RegExp, methods: Set<string> }>()
  app.addHook('onRoute', (route) => {
    if (route.url === '*') return
    const entry = routes.get(route.url) ?? { pattern: routePattern(route.url), methods: new Set<string>() }
    for (const method of [route.method].flat()) entry.methods.add(method)
    routes.set(route.url, entry)
  })

  const corsOptions = (request: FastifyRequest): FastifyCorsOptions => {
    const origin = request.headers.origin
    if (!opts.origins.allowsCors(origin)) return NO_CORS
    let methods: string[] | undefined
    if (request.method === 'OPTIONS') {
      const path = request.url.split('?', 1)[0] ?? ''
      const wanted = request.headers['access-control-request-method']
      const route = [...routes.values()].find((candidate) => candidate.pattern.test(path))
      methods = route === undefined ? undefined : [...route.methods]
      // Not a preflight, or one for a route a page may not call: no answer that looks like a permission.
      if (methods === undefined || typeof wanted !== 'string' || !methods.includes(wanted)) return NO_CORS
    }
    return { origin, credentials: true, methods, allowedHeaders: ALLOWED_HEADERS, exposedHeaders: EXPOSED_HEADERS, maxAge: PREFLIGHT_MAX_AGE }
  }

  // Cookies are parsed only where a cookie-mode client's cookie is read, not on every request.
  await app.register(cookie, { hook: false })
  await app.register(cors, { delegator: (request, callback) => { callback(null, corsOptions(request)) } })
}, { name: 'baton-browser', fastify: '5.x' })
