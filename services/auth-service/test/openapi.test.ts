import t from 'tap'
import { checkDocsUi, checkOpenApi } from '../../../packages/service-kit/test/openapi-checks.js'
import { setup } from './helper.js'

const CLIENTS = JSON.stringify([{ client_id: 'reporting', client_secret: 'reporting-secret-0123456789', grant_types: ['client_credentials'], scope: 'reports:read' }])

t.test('the OpenAPI document is valid, complete and truthful about security', async (t) => {
  const { app } = await setup(t, { CLIENTS, LOG_LEVEL: 'silent' })
  const document = await checkOpenApi(t, app)

  t.match(document.info, { title: 'Baton auth-service', version: /^\d+\.\d+\.\d+/ })
  t.match(document, { servers: [{ url: app.config.ISSUER }] }, 'the server is the issuer')
  t.match(document.components?.securitySchemes, {
    bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
    dpopAuth: { type: 'http', scheme: 'dpop' },
    clientBasic: { type: 'http', scheme: 'basic' }
  })

  for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
    const content = document.paths[path]?.post?.requestBody?.content ?? {}
    t.same(Object.keys(content).sort(), ['application/json', 'application/x-www-form-urlencoded'], `${path} takes form and JSON bodies`)
    t.same(content['application/json']?.schema, content['application/x-www-form-urlencoded']?.schema, `${path}: one schema for both`)
  }
  t.match(document.paths['/oauth/token']?.post?.requestBody?.content['application/json']?.schema, {
    required: ['grant_type'],
    properties: { grant_type: {}, username: {}, password: {}, refresh_token: {}, scope: {}, client_id: {}, client_secret: {}, device_token: {} }
  })
  t.match(document.paths['/oauth/token']?.post?.responses?.['200']?.content?.['application/json']?.schema, { properties: { device_token: { type: 'string' } } },
    'the password grant\'s device token is documented')
  t.same(Object.keys(document.paths['/users']?.post?.requestBody?.content ?? {}), ['application/json'], 'registration takes JSON only')
  t.match(document.paths['/oauth/introspect']?.post?.requestBody?.content['application/json']?.schema, { required: ['token'], properties: { token: {}, token_type_hint: {} } })
  t.same(document.paths['/oauth/token']?.post?.security, [{}, { clientBasic: [] }], 'client authentication is optional on the token endpoint')
  for (const path of ['/oauth/token', '/oauth/revoke']) {
    t.match(document.paths[path]?.post?.parameters, [{ in: 'header', name: 'origin' }, { in: 'header', name: 'x-baton-client' }], `${path}: cookie mode's request headers are documented`)
    t.match(document.paths[path]?.post?.description, /cookie/, `${path}: and what cookie mode does`)
  }
  t.match(document.paths['/oauth/token']?.post?.parameters, [{ in: 'header', name: 'origin' }, { in: 'header', name: 'x-baton-client' }, { in: 'header', name: 'dpop', description: /RFC 9449/ }], 'the token endpoint documents the DPoP header')
  t.match(JSON.stringify(document.paths['/oauth/token']?.post?.responses?.['200']?.content?.['application/json']?.schema?.properties?.token_type), /"DPoP"/, 'and that its tokens may be of type DPoP')
  t.match(document.paths['/.well-known/oauth-authorization-server']?.get?.responses?.['200']?.content?.['application/json']?.schema, { properties: { dpop_signing_alg_values_supported: { type: 'array' } } })
  t.notOk(document.paths['/oauth/revoke']?.post?.requestBody?.content['application/json']?.schema?.required?.includes('token'), 'a cookie-mode logout sends no token')
  t.same(document.paths['/oauth/introspect']?.post?.security, [{ clientBasic: [] }], 'and required for introspection')
  t.same(document.paths['/sessions']?.get?.security, [{ bearerAuth: [] }, { dpopAuth: [] }], 'a Bearer token, or a DPoP-bound one')
  t.match(document.paths['/.well-known/oauth-authorization-server']?.get?.responses?.['200']?.content?.['application/json']?.schema, {
    required: ['issuer', 'token_endpoint', 'jwks_uri', 'revocation_endpoint', 'grant_types_supported']
  })
  t.match(Object.keys(document.paths['/metrics']?.get?.responses?.['200']?.content ?? {}), [/^text\/plain/], 'metrics are text, not JSON')
})

t.test('the Swagger UI is served with all its assets, offline', async (t) => {
  const { app } = await setup(t, { LOG_LEVEL: 'silent' })
  await checkDocsUi(t, app)
})

t.test('fetching the documentation is not logged at info', async (t) => {
  const { app, logs } = await setup(t)
  await app.inject({ method: 'GET', url: '/openapi.json' })
  await app.inject({ method: 'GET', url: '/docs' })
  await app.inject({ method: 'GET', url: '/docs/static/swagger-ui.css' })
  t.notMatch(logs(), /"url":"\/(?:openapi\.json|docs)/, 'probes of the documentation do not flood the request log')
})
