import t from 'tap'
import { checkDocsUi, checkOpenApi } from '../../../packages/service-kit/test/openapi-checks.js'
import { REPORTS_SCOPE } from '../src/routes/reports.js'
import { setup } from './helper.js'

t.test('the OpenAPI document is valid, complete and truthful about security', async (t) => {
  const { app } = await setup(t)
  const document = await checkOpenApi(t, app)

  t.match(document.info, { title: 'Baton resource-service', version: /^\d+\.\d+\.\d+/ })
  t.same(Object.keys(document.components?.securitySchemes ?? {}), ['bearerAuth', 'dpopAuth'], 'bearer and DPoP-bound tokens are the only credentials')
  t.match(document.components?.securitySchemes?.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  t.match(document.components?.securitySchemes?.dpopAuth, { type: 'http', scheme: 'dpop' })
  t.same(document.paths['/me']?.get?.security, [{ bearerAuth: [] }, { dpopAuth: [] }])
  t.same(document.paths['/reports']?.get?.security, [{ bearerAuth: [REPORTS_SCOPE] }, { dpopAuth: [REPORTS_SCOPE] }], 'the scope /reports needs is documented')
  for (const status of ['200', '400', '401']) t.ok(document.paths['/me']?.get?.responses?.[status], `/me documents ${status}`)
  t.ok(document.paths['/reports']?.get?.responses?.['403'], '/reports documents 403 insufficient_scope')
})

t.test('the Swagger UI is served with all its assets, offline', async (t) => {
  const { app } = await setup(t)
  await checkDocsUi(t, app)
})

t.test('the documentation needs no token: it is outside the protected API', async (t) => {
  const { app } = await setup(t)
  t.equal((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 200)
})
