import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { validate, compileErrors } from '@readme/openapi-parser'
import { OPENAPI_DOCUMENT_PATH, OPENAPI_UI_PATH } from '../src/openapi.js'

// Shared by each service's openapi.test.ts: the document a service publishes
// must be valid OpenAPI, list every route it really serves, and say of each
// route the truth about its security.

interface Schema {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  minLength?: number
}
interface MediaType { schema?: Schema }
interface Operation {
  description?: string
  tags?: string[]
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string, name: string }>
  requestBody?: { content: Record<string, MediaType> }
  responses?: Record<string, { description?: string, content?: Record<string, MediaType> }>
}
export interface OpenApiDocument {
  openapi: string
  info: { title: string, version: string }
  components?: { securitySchemes?: Record<string, { type: string, scheme?: string }> }
  paths: Record<string, Record<string, Operation>>
}

/** `GET /sessions/{id}` style keys for every route the app serves, from Fastify's own router, not from the document. */
export function servedRoutes (app: FastifyInstance): Set<string> {
  const routes = new Set<string>()
  const segments: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (match === null) continue
    segments.length = match[1]!.length / 4
    segments.push(match[2]!)
    const url = segments.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    for (const method of match[3]?.split(', ') ?? []) {
      // Fastify adds HEAD to every GET by itself.
      if (method !== 'HEAD') routes.add(`${method} ${url}`)
    }
  }
  return routes
}

export function documentedRoutes (document: OpenApiDocument): Map<string, Operation> {
  const operations = new Map<string, Operation>()
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) operations.set(`${method.toUpperCase()} ${path}`, operation)
  }
  return operations
}

/** A body that passes the schema's `required` string fields, so that what answers is the route, not validation. */
function minimalBody (schema: Schema | undefined): Record<string, string> {
  const body: Record<string, string> = {}
  for (const name of schema?.required ?? []) body[name] = 'x'.repeat(schema?.properties?.[name]?.minLength ?? 1)
  return body
}

const isDocumentationRoute = (route: string): boolean => {
  const url = route.slice(route.indexOf(' ') + 1)
  return url === OPENAPI_DOCUMENT_PATH || url === OPENAPI_UI_PATH || url.startsWith(`${OPENAPI_UI_PATH}/`)
}

// @fastify/cors answers preflights on a catch-all route; an OpenAPI path cannot name it, and no client calls it on purpose.
const isPreflightRoute = (route: string): boolean => route === 'OPTIONS *'

/**
 * Runs every check against an app that is ready; returns the document for
 * the service's own assertions.
 */
export async function checkOpenApi (t: Test, app: FastifyInstance): Promise<OpenApiDocument> {
  const response = await app.inject({ method: 'GET', url: OPENAPI_DOCUMENT_PATH })
  t.equal(response.statusCode, 200, `${OPENAPI_DOCUMENT_PATH} answers`)
  t.match(response.headers['content-type'], /^application\/json/)
  const document = response.json<OpenApiDocument>()
  t.equal(document.openapi, '3.1.0')

  // validate() dereferences in place: give it a copy.
  const result = await validate(structuredClone(document) as never)
  t.ok(result.valid, result.valid ? 'a valid OpenAPI 3.1 document' : compileErrors(result))
  t.same(result.warnings, [], 'and no warnings')

  const served = servedRoutes(app)
  const documented = documentedRoutes(document)
  const undocumented = [...served].filter((route) => !documented.has(route) && !isDocumentationRoute(route) && !isPreflightRoute(route))
  t.same(undocumented, [], 'every route the app serves is documented')
  t.same([...documented.keys()].filter((route) => !served.has(route)), [], 'and nothing else is')
  t.ok(served.has(`GET ${OPENAPI_UI_PATH}`) && served.has(`GET ${OPENAPI_DOCUMENT_PATH}`), 'the document and the UI are served, and left out of the document')

  const schemes = document.components?.securitySchemes ?? {}
  for (const [route, operation] of documented) {
    t.test(route, async (t) => {
      t.ok(operation.description, 'has a description')
      t.ok((operation.tags?.length ?? 0) > 0, 'has a tag')
      const responses = Object.entries(operation.responses ?? {})
      const successes = responses.filter(([status]) => /^2/.test(status))
      t.ok(successes.length > 0, 'documents a success response')
      for (const [status, documentedResponse] of responses) {
        t.not(documentedResponse.description, 'Default Response', `${status} is described`)
        if (status === '204') continue
        const media = Object.values(documentedResponse.content ?? {})
        t.ok(media.length > 0 && media.every((entry) => entry.schema !== undefined), `${status} has a schema`)
      }
      for (const requirement of operation.security ?? []) {
        for (const name of Object.keys(requirement)) t.ok(schemes[name], `security scheme ${name} is defined`)
      }

      // What the document says about security is what an anonymous caller meets.
      const [method, path] = route.split(' ') as [string, string]
      const url = path.replace(/\{[^}]+\}/g, 'AAAAAAAAAAAAAAAAAAAAAA')
      const jsonBody = operation.requestBody?.content['application/json']?.schema
      const anonymous = await app.inject({
        method: method as 'GET',
        url,
        ...(operation.requestBody === undefined ? {} : { payload: minimalBody(jsonBody) })
      })
      const security = operation.security ?? []
      const anonymousAllowed = security.length === 0 || security.some((requirement) => Object.keys(requirement).length === 0)
      if (anonymousAllowed) {
        t.not(anonymous.statusCode, 401, 'documented as open: an anonymous call is not refused for want of credentials')
      } else {
        t.equal(anonymous.statusCode, 401, 'documented as protected: an anonymous call gets 401')
        const scheme = schemes[Object.keys(security[0]!)[0]!]
        const challenge = String(anonymous.headers['www-authenticate'])
        t.match(challenge, new RegExp(`^${scheme?.scheme ?? '?'} `, 'i'), `the challenge names the documented scheme (${scheme?.scheme ?? '?'})`)
      }
    })
  }
  return document
}

/** The Swagger UI and every asset its page loads, served by the app itself. */
export async function checkDocsUi (t: Test, app: FastifyInstance): Promise<void> {
  const page = await app.inject({ method: 'GET', url: OPENAPI_UI_PATH })
  t.equal(page.statusCode, 200, `${OPENAPI_UI_PATH} answers`)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'self'/, 'a CSP that keeps the page to its own origin')
  t.notMatch(page.headers['content-security-policy'], /upgrade-insecure-requests/, 'which also works over plain http')
  const assets = [...page.body.matchAll(/(?:href|src)="([^"]+)"/g)].map((match) => match[1]!)
  t.ok(assets.some((asset) => asset.endsWith('.js')) && assets.some((asset) => asset.endsWith('.css')), 'the page loads scripts and styles')
  for (const asset of assets) {
    t.notMatch(asset, /^(?:https?:)?\/\//, `${asset} is local: the UI works without a network`)
    const loaded = await app.inject({ method: 'GET', url: new URL(asset, `http://localhost${OPENAPI_UI_PATH}/`).pathname })
    t.equal(loaded.statusCode, 200, `${asset} is served`)
    t.ok(loaded.rawPayload.length > 0, `${asset} is not empty`)
  }
  const initializer = await app.inject({ method: 'GET', url: `${OPENAPI_UI_PATH}/static/swagger-initializer.js` })
  t.equal(initializer.statusCode, 200)
  t.match(initializer.body, /validatorUrl: null/, 'no call to an online validator')
  const json = await app.inject({ method: 'GET', url: `${OPENAPI_UI_PATH}/json` })
  t.equal(json.statusCode, 200, 'the UI reads the same document')
  t.same(json.json(), (await app.inject({ method: 'GET', url: OPENAPI_DOCUMENT_PATH })).json())
}
