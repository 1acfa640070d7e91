// CORS_ORIGINS: pages on the listed origins may call the API from a browser
// with a bearer token; any other origin gets no CORS header, so its page
// cannot read an answer, and no credentials are ever invited.
import t from 'tap'
import { ConfigError } from '@baton/service-kit'
import { loadConfig } from '../src/config.js'
import { claims, setup, signToken } from './helper.js'

const APP = 'http://localhost:3000'
const ELSEWHERE = 'https://evil.example'

t.test('CORS_ORIGINS takes origins separated by commas, and nothing else', async (t) => {
  t.same(loadConfig({}).CORS_ORIGINS, [], 'none by default')
  t.same(loadConfig({ CORS_ORIGINS: `${APP}, https://app.example.com,https://app.example.com` }).CORS_ORIGINS, [APP, 'https://app.example.com'])
  for (const bad of ['localhost:3000', 'https://app.example.com/', 'https://app.example.com/path', 'ftp://app.example.com', '*', 'null', `${APP} https://app.example.com`]) {
    t.throws(() => loadConfig({ CORS_ORIGINS: bad }), ConfigError, bad)
  }
})

t.test('a preflight from an allowed origin gets 204 and the CORS headers; from another origin, none', async (t) => {
  const { app } = await setup(t, { CORS_ORIGINS: APP })
  const preflight = async (origin: string): Promise<Awaited<ReturnType<typeof app.inject>>> => await app.inject({
    method: 'OPTIONS', url: '/me', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }
  })

  const allowed = await preflight(APP)
  t.equal(allowed.statusCode, 204)
  t.equal(allowed.headers['access-control-allow-origin'], APP)
  t.match(allowed.headers['access-control-allow-methods'], /\bGET\b/)
  t.match(allowed.headers['access-control-allow-headers'], /\bauthorization\b/)
  t.match(allowed.headers.vary, /Origin/, 'caches keep the answers of different origins apart')
  t.notOk(allowed.headers['access-control-allow-credentials'], 'no credentials: the API reads a bearer token, not a cookie')

  const other = await preflight(ELSEWHERE)
  t.equal(other.statusCode, 404)
  t.same(Object.keys(other.headers).filter((name) => name.startsWith('access-control-')), [], 'another origin gets no CORS header')
})

t.test('an answer to an allowed origin carries its CORS header, and a 401 lets the page read why', async (t) => {
  const { app, keys, clock } = await setup(t, { CORS_ORIGINS: APP })
  const token = signToken(keys[0]!, claims({}, clock.now()))
  const ok = await app.inject({ method: 'GET', url: '/me', headers: { origin: APP, authorization: `Bearer ${token}` } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['access-control-allow-origin'], APP)

  const refused = await app.inject({ method: 'GET', url: '/me', headers: { origin: APP } })
  t.equal(refused.statusCode, 401)
  t.equal(refused.headers['access-control-allow-origin'], APP)
  t.match(refused.headers['access-control-expose-headers'], /www-authenticate/i)

  const other = await app.inject({ method: 'GET', url: '/me', headers: { origin: ELSEWHERE, authorization: `Bearer ${token}` } })
  t.equal(other.statusCode, 200, 'the API still answers (CORS is the browser\'s rule, not access control)')
  t.equal(other.headers['access-control-allow-origin'], undefined, 'but without the header the browser hands nothing to that page')
})

t.test('without CORS_ORIGINS no CORS header is sent and a preflight is not answered', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({ method: 'OPTIONS', url: '/me', headers: { origin: APP, 'access-control-request-method': 'GET' } })
  t.equal(response.statusCode, 404)
  t.equal(response.headers['access-control-allow-origin'], undefined)
})
