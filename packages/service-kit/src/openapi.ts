import { STATUS_CODES } from 'node:http'
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'

/** An OpenAPI security scheme that routes name in `schema.security`. */
export interface HttpSecurityScheme {
  type: 'http'
  scheme: 'bearer' | 'basic' | 'dpop'
  bearerFormat?: string
  description?: string
}

export interface OpenApiOptions {
  title: string
  version: string
  description: string
  /** The service's public base URL, listed as the document's only server; omitted: the URL the document was fetched from. */
  serverUrl?: string
  securitySchemes?: Record<string, HttpSecurityScheme>
  tags?: Array<{ name: string, description: string }>
}

/** Where the generated document is served; the UI lives under {@link OPENAPI_UI_PATH}. */
export const OPENAPI_DOCUMENT_PATH = '/openapi.json'
export const OPENAPI_UI_PATH = '/docs'

// Swagger UI's own default CSP ends with upgrade-insecure-requests, which
// breaks the page on a plain-http development server; it needs no more than this.
const UI_CSP = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'frame-ancestors': ["'self'"],
  'form-action': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"]
}

interface OpenApiDocument {
  paths?: Record<string, Record<string, { responses?: Record<string, { description?: string }> }>>
}

const RANGES: Readonly<Record<string, string>> = { '2XX': 'Success', '4XX': 'Client error', '5XX': 'Server error' }

/** Response schemas rarely carry a description; the status's reason phrase reads better than the generator's "Default Response". */
function describeResponses<T extends OpenApiDocument> (document: T): T {
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (response.description === 'Default Response') response.description = RANGES[status] ?? STATUS_CODES[status] ?? status
      }
    }
  }
  return document
}

/**
 * An OpenAPI 3.1 document generated from the route schemas (TypeBox schemas
 * are JSON Schema 2020-12, as OpenAPI 3.1 expects), served at `/openapi.json`,
 * and a Swagger UI at `/docs` whose assets ship in the package: no CDN, works
 * offline. Register it before any route: routes registered earlier are not
 * seen. Its own routes are hidden from the document.
 *
 * @example
 * await app.register(openApiPlugin, { title: 'My API', version: '1.0.0', description: '…',
 *   securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } })
 */
export const openApiPlugin = fp(async function openApi (app: FastifyInstance, opts: OpenApiOptions) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: opts.title, version: opts.version, description: opts.description },
      ...(opts.serverUrl === undefined ? {} : { servers: [{ url: opts.serverUrl }] }),
      components: { securitySchemes: { ...opts.securitySchemes } },
      ...(opts.tags === undefined ? {} : { tags: opts.tags })
    },
    // Only the OpenAPI form is ever generated here, never Swagger 2.
    transformObject: (generated) => describeResponses((generated as { openapiObject: OpenApiDocument }).openapiObject)
  })

  // A context of its own, so the UI's asset requests log only at warn.
  await app.register(async function docsUi (docs) {
    await docs.register(swaggerUi, { routePrefix: OPENAPI_UI_PATH, staticCSP: UI_CSP })
  }, { logLevel: 'warn' })

  app.get(OPENAPI_DOCUMENT_PATH, { schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) => {
    // The document changes only with a deployment.
    reply.header('cache-control', 'public, max-age=300')
    return app.swagger()
  })
}, { name: 'baton-openapi', fastify: '5.x' })
