// Cookie mode and CORS over real sockets, as a browser page would meet them:
// the refresh token only in an HttpOnly cookie, the CSRF defence of every
// request that reads or writes it, and CORS headers only for allowed origins.
import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import { startRedis } from '@baton/test-redis'
import { loadConfig } from '../src/app.js'
import { bearer, decodeJwt, dumpStrings, register, setup, testClock, until, type TestBackendKind, type TestClock, type TestContext } from './helper.js'

const PAGE = 'http://localhost:5173'
const ADMIN_PAGE = 'http://localhost:5174'
const EVIL = 'http://evil.localhost:8080'
const COOKIE = '__Host-baton-refresh-baton'
const IDLE_S = 3600
const ABSOLUTE_S = 5400

const ENV = {
  CORS_ORIGINS: `${PAGE}, ${ADMIN_PAGE}`,
  CLIENTS: JSON.stringify([
    { client_id: 'baton', grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie' },
    { client_id: 'admin', grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie', allowed_origins: [ADMIN_PAGE] },
    { client_id: 'cli', grant_types: ['password', 'refresh_token'] }
  ]),
  REFRESH_TOKEN_TTL: String(IDLE_S),
  SESSION_MAX_TTL: String(ABSOLUTE_S)
}

interface Served extends TestContext {
  base: string
  clock: TestClock
}

async function serve (t: Test, env: Record<string, string> = {}, backend?: TestBackendKind): Promise<Served> {
  const clock = testClock()
  const context = await setup(t, { ...ENV, ...env }, { clock, backend })
  await context.app.listen({ host: '127.0.0.1', port: 0 })
  return { ...context, clock, base: `http://127.0.0.1:${(context.app.server.address() as AddressInfo).port}` }
}

interface Call {
  form?: Record<string, string>
  /** The refresh-token cookie the browser holds; undefined: none. */
  cookie?: string | undefined
  /** The page's origin; null: no Origin header. */
  origin?: string | null
  clientHeader?: boolean
  method?: string
  headers?: Record<string, string>
}

/** A request as a page of `origin` sends it with `credentials: 'include'` and the client's header. */
async function call (base: string, path: string, { form, cookie, origin = PAGE, clientHeader = true, method = 'POST', headers = {} }: Call = {}): Promise<Response> {
  return await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      ...(origin === null ? {} : { origin }),
      ...(clientHeader ? { 'x-baton-client': '1' } : {}),
      ...(cookie === undefined ? {} : { cookie: `theme=dark; ${COOKIE}=${cookie}` }),
      ...headers
    },
    ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() })
  })
}

interface SetCookie { name: string, value: string, attributes: Map<string, string> }

function setCookies (response: Response): SetCookie[] {
  return response.headers.getSetCookie().map((line) => {
    const [pair = '', ...attributes] = line.split(';').map((part) => part.trim())
    const equals = pair.indexOf('=')
    return {
      name: pair.slice(0, equals),
      value: pair.slice(equals + 1),
      attributes: new Map(attributes.map((attribute) => {
        const [key = '', value = ''] = attribute.split('=')
        return [key.toLowerCase(), value]
      }))
    }
  })
}

/** The one refresh cookie an answer sets, checked for the attributes cookie mode promises. */
function refreshCookie (t: Test, response: Response, maxAge: number, name = COOKIE): string {
  const cookies = setCookies(response)
  t.equal(cookies.length, 1, 'one cookie is set')
  const [cookie] = cookies
  t.equal(cookie?.name, name)
  t.same(Object.fromEntries(cookie?.attributes ?? []), { 'max-age': String(maxAge), path: '/', httponly: '', secure: '', samesite: 'Strict' },
    'HttpOnly, Secure, SameSite=Strict, Path=/, no Domain (the __Host- prefix demands it), Max-Age the session\'s remaining lifetime')
  return cookie?.value ?? ''
}

function clearsCookie (t: Test, response: Response, name = COOKIE): void {
  t.match(setCookies(response), [{ name, value: '', attributes: new Map([['max-age', '0']]) }], 'the cookie is cleared (Max-Age=0)')
}

async function login (served: Served, options: Call & { clientId?: string } = {}): Promise<{ response: Response, body: Record<string, unknown>, text: string }> {
  const user = await register(served.app)
  const response = await call(served.base, '/oauth/token', { ...options, form: { grant_type: 'password', username: user.username, password: user.password, client_id: options.clientId ?? 'baton', ...options.form } })
  const text = await response.text()
  return { response, text, body: JSON.parse(text) as Record<string, unknown> }
}

const refreshForm = { grant_type: 'refresh_token', client_id: 'baton' }
// What the SDK's logout sends in cookie mode.
const logoutForm = { token_type_hint: 'refresh_token', client_id: 'baton' }

t.test('login: the refresh token goes only into the cookie, never into the body', async (t) => {
  const served = await serve(t)
  const { response, body, text } = await login(served)
  t.equal(response.status, 200)
  const value = refreshCookie(t, response, IDLE_S)
  t.match(value, /^[A-Za-z0-9_-]{100,}$/, 'the cookie holds a refresh token')
  t.notOk('refresh_token' in body, 'the body has no refresh_token')
  t.notOk(text.includes(value), 'nor the token anywhere else in the body')
  t.match(body, { token_type: 'Bearer', access_token: /\./, expires_in: Number })
  t.equal(response.headers.get('cache-control'), 'no-store')
  t.equal(response.headers.get('access-control-allow-origin'), PAGE, 'the page may read the answer')
  t.equal(response.headers.get('access-control-allow-credentials'), 'true')
})

t.test('refresh reads the cookie and rotates it; Max-Age follows the session\'s end', async (t) => {
  const served = await serve(t)
  const first = refreshCookie(t, (await login(served)).response, IDLE_S)

  served.clock.advance(2000 * 1000)
  const rotated = await call(served.base, '/oauth/token', { form: refreshForm, cookie: first })
  t.equal(rotated.status, 200)
  const text = await rotated.text()
  // 2000 s in, the absolute end (5400 s) is 3400 s away, nearer than a full idle period.
  const second = refreshCookie(t, rotated, ABSOLUTE_S - 2000)
  t.not(second, first, 'a new refresh token')
  t.notOk(text.includes('refresh_token') || text.includes(second), 'which is not in the body')
  const { access_token: access } = JSON.parse(text) as { access_token: string }
  t.equal((await call(served.base, '/sessions', { method: 'GET', headers: bearer(access) })).status, 200, 'the new access token works')

  served.clock.advance(60 * 1000)
  const again = await call(served.base, '/oauth/token', { form: refreshForm, cookie: second })
  t.equal(again.status, 200, 'and the new cookie refreshes in turn')
  refreshCookie(t, again, ABSOLUTE_S - 2060)
})

t.test('a lost answer: the retry with the old cookie inside the grace window gets the same successor', async (t) => {
  const served = await serve(t)
  const first = refreshCookie(t, (await login(served)).response, IDLE_S)
  served.clock.advance(100 * 1000)
  const lost = refreshCookie(t, await call(served.base, '/oauth/token', { form: refreshForm, cookie: first }), IDLE_S)
  served.clock.advance(2000)
  const retried = await call(served.base, '/oauth/token', { form: refreshForm, cookie: first })
  t.equal(retried.status, 200)
  t.equal(refreshCookie(t, retried, IDLE_S - 2), lost, 'the successor already issued, with its own Max-Age')
})

t.test('parallel refreshes with one cookie beyond the grace retries leave the cookie alone: the session lives', async (t) => {
  const served = await serve(t, { REFRESH_GRACE_RETRIES: '1' })
  const first = refreshCookie(t, (await login(served)).response, IDLE_S)
  const successor = refreshCookie(t, await call(served.base, '/oauth/token', { form: refreshForm, cookie: first }), IDLE_S)
  t.equal(refreshCookie(t, await call(served.base, '/oauth/token', { form: refreshForm, cookie: first }), IDLE_S), successor, 'the one grace retry gets the successor')
  const beyond = await call(served.base, '/oauth/token', { form: refreshForm, cookie: first })
  t.equal(beyond.status, 400)
  t.match(await beyond.json(), { error: 'invalid_grant' })
  t.same(setCookies(beyond), [], 'no Set-Cookie: a late answer must not wipe the successor an earlier one set')
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie: successor })).status, 200, 'the session goes on with the successor')
})

t.test('replay of a spent cookie: the session is revoked and the cookie cleared', async (t) => {
  const served = await serve(t)
  const { response, body } = await login(served)
  const access = body.access_token as string
  const first = refreshCookie(t, response, IDLE_S)
  const second = refreshCookie(t, await call(served.base, '/oauth/token', { form: refreshForm, cookie: first }), IDLE_S)
  served.clock.advance(60 * 1000)

  const replay = await call(served.base, '/oauth/token', { form: refreshForm, cookie: first })
  t.equal(replay.status, 400)
  t.match(await replay.json(), { error: 'invalid_grant' })
  clearsCookie(t, replay)
  const owner = await call(served.base, '/oauth/token', { form: refreshForm, cookie: second })
  t.equal(owner.status, 400, 'the latest cookie died with its session')
  clearsCookie(t, owner)
  t.notOk((await dumpStrings(served.redis, served.prefix)).includes(`:session:${decodeJwt(access).payload.sid as string}`), 'the session is gone from Redis')
})

t.test('refresh without a cookie is invalid_grant ("no session"); a refresh token in the body is refused', async (t) => {
  const served = await serve(t)
  const none = await call(served.base, '/oauth/token', { form: refreshForm })
  t.equal(none.status, 400)
  t.match(await none.json(), { error: 'invalid_grant' })

  const cookie = refreshCookie(t, (await login(served)).response, IDLE_S)
  const inBody = await call(served.base, '/oauth/token', { form: { ...refreshForm, refresh_token: cookie }, cookie })
  t.equal(inBody.status, 400)
  t.match(await inBody.json(), { error: 'invalid_request', error_description: /cookie/ })
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie })).status, 200, 'the cookie was not spent')
})

t.test('logout: /oauth/revoke ends the cookie\'s session and clears the cookie', async (t) => {
  const served = await serve(t)
  const { response, body } = await login(served)
  const cookie = refreshCookie(t, response, IDLE_S)
  const revoked = await call(served.base, '/oauth/revoke', { form: logoutForm, cookie })
  t.equal(revoked.status, 200)
  clearsCookie(t, revoked)
  t.equal((await call(served.base, '/sessions', { method: 'GET', headers: bearer(body.access_token as string) })).status, 401, 'the session\'s access token is refused')
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie })).status, 400, 'and the cookie no longer refreshes')

  const without = await call(served.base, '/oauth/revoke', { form: logoutForm })
  t.equal(without.status, 200, 'a logout without a cookie has nothing to end: 200')
  clearsCookie(t, without)

  const other = refreshCookie(t, (await login(served)).response, IDLE_S)
  const inBody = await call(served.base, '/oauth/revoke', { form: { ...logoutForm, token: other }, cookie: other })
  t.equal(inBody.status, 400, 'a refresh token in the body is refused')
  t.match(await inBody.json(), { error: 'invalid_request' })
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie: other })).status, 200, 'and ended nothing')
})

t.test('ending its own session through /sessions clears the cookie; ending another session leaves it', async (t) => {
  const served = await serve(t)
  const user = await register(served.app)
  const signIn = async (clientId = 'baton'): Promise<{ response: Response, token: string }> => {
    const cookieMode = clientId !== 'cli'
    const response = await call(served.base, '/oauth/token', {
      form: { grant_type: 'password', username: user.username, password: user.password, client_id: clientId },
      ...(cookieMode ? {} : { origin: null, clientHeader: false })
    })
    t.equal(response.status, 200, `signed in through ${clientId}`)
    return { response, token: (await response.clone().json() as { access_token: string }).access_token }
  }
  const sidOf = (token: string): string => decodeJwt(token).payload.sid as string

  const page = await signIn()
  const cookie = refreshCookie(t, page.response, IDLE_S)

  // The user's CLI (token mode) logging out everywhere answers with no cookie: it has none.
  const cli = await signIn('cli')
  const cliEnds = await call(served.base, `/sessions/${sidOf(cli.token)}`, { method: 'DELETE', headers: bearer(cli.token) })
  t.equal(cliEnds.status, 204)
  t.same(setCookies(cliEnds), [], 'a token-mode client ending its own session sets no cookie')

  const laptop = await signIn()
  const endsOther = await call(served.base, `/sessions/${sidOf(laptop.token)}`, { method: 'DELETE', headers: bearer(page.token) })
  t.equal(endsOther.status, 204)
  t.same(setCookies(endsOther), [], 'ending another session leaves this page\'s cookie alone')
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie })).status, 200, 'and this page\'s session still refreshes')

  const own = await signIn()
  const endsOwn = await call(served.base, `/sessions/${sidOf(own.token)}`, { method: 'DELETE', headers: bearer(own.token) })
  t.equal(endsOwn.status, 204)
  clearsCookie(t, endsOwn)

  const last = await signIn()
  const everywhere = await call(served.base, '/sessions', { method: 'DELETE', headers: bearer(last.token) })
  t.equal(everywhere.status, 204)
  clearsCookie(t, everywhere)
})

t.test('a logout Redis cannot take (503) keeps the cookie, so the retry still ends the session', async (t) => {
  // A Redis of its own, every write on disk: it goes away and comes back with the session in it.
  const redis = await startRedis({ appendonly: true, extraArgs: ['--appendfsync', 'always'] })
  t.teardown(async () => { await redis.stop() })
  const served = await serve(t, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT: '1000' }, 'standalone')
  const { response, body } = await login(served)
  const cookie = refreshCookie(t, response, IDLE_S)
  const ready = async (): Promise<number> => (await served.app.inject('/readyz')).statusCode

  redis.kill()
  await until('the auth-service to see Redis gone', async () => await ready() === 503)
  const failed = await call(served.base, '/oauth/revoke', { form: logoutForm, cookie })
  t.equal(failed.status, 503, 'the session could not be ended')
  t.same(setCookies(failed), [], 'so the browser keeps the cookie to try again with')

  await redis.restart()
  await until('the auth-service to see Redis back', async () => await ready() === 200)
  const retried = await call(served.base, '/oauth/revoke', { form: logoutForm, cookie })
  t.equal(retried.status, 200)
  clearsCookie(t, retried)
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie })).status, 400, 'the retry ended the session: the cookie no longer refreshes')
  t.equal((await call(served.base, '/sessions', { method: 'GET', headers: bearer(body.access_token as string) })).status, 401, 'and its access token is refused')
})

t.test('CSRF: without an allowed Origin and the X-Baton-Client header, 403 and nothing changes', async (t) => {
  const served = await serve(t)
  const cookie = refreshCookie(t, (await login(served)).response, IDLE_S)
  const user = await register(served.app)
  const stored = await dumpStrings(served.redis, served.prefix)

  const forged: Array<[string, string, Call]> = [
    ['a refresh without the header (a cross-site form)', '/oauth/token', { form: refreshForm, cookie, clientHeader: false }],
    ['a refresh from another origin', '/oauth/token', { form: refreshForm, cookie, origin: EVIL }],
    ['a refresh without an Origin', '/oauth/token', { form: refreshForm, cookie, origin: null }],
    ['a refresh from the opaque origin', '/oauth/token', { form: refreshForm, cookie, origin: 'null' }],
    ['a logout without the header', '/oauth/revoke', { form: logoutForm, cookie, clientHeader: false }],
    ['a logout from another origin', '/oauth/revoke', { form: logoutForm, cookie, origin: EVIL }],
    ['a login without the header (login CSRF)', '/oauth/token', { form: { grant_type: 'password', username: user.username, password: user.password }, clientHeader: false }],
    ['a login from another origin', '/oauth/token', { form: { grant_type: 'password', username: user.username, password: user.password }, origin: EVIL }],
    ['an admin refresh from an origin of CORS_ORIGINS that is not the client\'s', '/oauth/token', { form: { grant_type: 'refresh_token', client_id: 'admin' }, cookie }]
  ]
  for (const [what, path, options] of forged) {
    const response = await call(served.base, path, options)
    t.equal(response.status, 403, `${what}: 403`)
    t.match(await response.json(), { error: 'invalid_request', error_description: /Origin|X-Baton-Client/ }, 'with a body that says why')
    t.same(setCookies(response), [], 'and no cookie set or cleared')
  }
  t.equal(await dumpStrings(served.redis, served.prefix), stored, 'nothing in Redis changed')
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie })).status, 200, 'the session is still valid')
})

t.test('a client\'s allowed_origins narrow CORS_ORIGINS; each client has its own cookie', async (t) => {
  const served = await serve(t)
  const baton = refreshCookie(t, (await login(served)).response, IDLE_S)
  const admin = await login(served, { clientId: 'admin', origin: ADMIN_PAGE })
  t.equal(admin.response.status, 200, 'the admin page logs in from its origin')
  const adminCookie = refreshCookie(t, admin.response, IDLE_S, '__Host-baton-refresh-admin')
  t.equal((await login(served, { clientId: 'admin' })).response.status, 403, 'but not from the other page')

  const refreshed = await call(served.base, '/oauth/token', { form: { grant_type: 'refresh_token', client_id: 'admin' }, origin: ADMIN_PAGE, headers: { cookie: `${COOKIE}=${baton}; __Host-baton-refresh-admin=${adminCookie}` } })
  t.equal(refreshed.status, 200, 'with both cookies sent, the admin client reads its own')
  refreshCookie(t, refreshed, IDLE_S, '__Host-baton-refresh-admin')
  t.equal((await call(served.base, '/oauth/token', { form: refreshForm, cookie: baton })).status, 200, 'and the other app\'s session is untouched')
})

t.test('body-mode clients are unchanged: the token in the body, no cookie, no Origin needed', async (t) => {
  const served = await serve(t)
  const { response, body } = await login(served, { clientId: 'cli', origin: null, clientHeader: false })
  t.equal(response.status, 200)
  t.same(setCookies(response), [], 'no cookie')
  t.type(body.refresh_token, 'string', 'the refresh token is in the body')
  const refreshed = await call(served.base, '/oauth/token', { form: { grant_type: 'refresh_token', client_id: 'cli', refresh_token: body.refresh_token as string }, origin: null, clientHeader: false, cookie: 'ignored' })
  t.equal(refreshed.status, 200)
  t.same(setCookies(refreshed), [])
  t.equal(response.headers.get('access-control-allow-origin'), null, 'no Origin, no CORS headers')
})

t.test('preflights: 204 with the CORS headers for allowed origins, on the routes a page calls', async (t) => {
  const served = await serve(t)
  const preflight = async (path: string, method: string, origin = PAGE): Promise<Response> => await fetch(`${served.base}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type,x-baton-client' }
  })
  for (const [path, method] of [['/oauth/token', 'POST'], ['/oauth/revoke', 'POST'], ['/sessions', 'GET'], ['/sessions', 'DELETE'], ['/sessions/AAAAAAAAAAAAAAAAAAAAAA', 'DELETE'], ['/users/me/password', 'POST'], ['/users', 'POST']] as const) {
    const response = await preflight(path, method)
    t.equal(response.status, 204, `${method} ${path}: 204`)
    t.equal(response.headers.get('access-control-allow-origin'), PAGE, 'Access-Control-Allow-Origin is the origin')
    t.equal(response.headers.get('access-control-allow-credentials'), 'true')
    t.match(response.headers.get('access-control-allow-methods'), method)
    t.same(response.headers.get('access-control-allow-headers')?.split(', ').sort(), ['authorization', 'content-type', 'dpop', 'x-baton-client'])
    t.match(response.headers.get('vary'), /Origin/, 'caches keep answers per origin')
  }

  const refused: Array<[string, string, string]> = [
    ['/oauth/token', 'POST', EVIL],
    ['/oauth/token', 'POST', 'null'],
    ['/oauth/token', 'PUT', PAGE],
    ['/oauth/introspect', 'POST', PAGE],
    ['/healthz', 'GET', PAGE]
  ]
  for (const [path, method, origin] of refused) {
    const response = await preflight(path, method, origin)
    t.ok(response.status >= 400 && response.status < 500, `${method} ${path} from ${origin}: a 4xx`)
    t.same([...response.headers.keys()].filter((name) => name.startsWith('access-control-')), [], 'and no CORS header at all')
  }
  const notPreflight = await fetch(`${served.base}/oauth/token`, { method: 'OPTIONS', headers: { origin: PAGE } })
  t.equal(notPreflight.status, 404, 'an OPTIONS without Access-Control-Request-Method is no preflight')
})

t.test('answers: CORS headers for allowed origins, none for others; errors readable by the page', async (t) => {
  const served = await serve(t)
  const unauthenticated = await call(served.base, '/sessions', { method: 'GET' })
  t.equal(unauthenticated.status, 401)
  t.equal(unauthenticated.headers.get('access-control-allow-origin'), PAGE, 'a 401 is readable by the page')
  t.same(unauthenticated.headers.get('access-control-expose-headers')?.split(', ').sort(), ['dpop-nonce', 'retry-after', 'www-authenticate'], 'with its challenge, Retry-After and the DPoP nonce')

  const other = await call(served.base, '/oauth/token', { form: refreshForm, origin: EVIL })
  t.same([...other.headers.keys()].filter((name) => name.startsWith('access-control-')), [], 'another origin gets no CORS header')
  const introspect = await call(served.base, '/oauth/introspect', { form: { token: 'x' } })
  t.equal(introspect.headers.get('access-control-allow-origin'), null, 'introspection is not for pages')
})

t.test('CORS_ORIGINS unset: no CORS at all, cookie mode refused at start-up', async (t) => {
  const served = await serve(t, { CORS_ORIGINS: '', CLIENTS: '[]' })
  const response = await fetch(`${served.base}/oauth/token`, { method: 'OPTIONS', headers: { origin: PAGE, 'access-control-request-method': 'POST' } })
  t.equal(response.headers.get('access-control-allow-origin'), null)
  t.throws(() => loadConfig({ CLIENTS: ENV.CLIENTS }), /^CLIENTS\[0\]\.refresh_token_delivery cookie needs the origins/)
})

t.test('configuration: exact origins only, one line naming the setting', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['https://app.example.com/', /^CORS_ORIGINS "https:\/\/app\.example\.com\/" is not an exact origin.*did you mean "https:\/\/app\.example\.com"\?\)$/],
    ['https://app.example.com/login', /^CORS_ORIGINS .*not an exact origin/],
    ['https://*.example.com', /^CORS_ORIGINS .*no wildcard/],
    ['*', /^CORS_ORIGINS "\*" is not an exact origin/],
    ['https://App.Example.com', /did you mean "https:\/\/app\.example\.com"/],
    ['https://app.example.com:443', /did you mean "https:\/\/app\.example\.com"/],
    ['app.example.com', /^CORS_ORIGINS "app\.example\.com" is not an exact origin/],
    ['ftp://app.example.com', /^CORS_ORIGINS .*http or https/],
    ['null', /^CORS_ORIGINS "null"/]
  ]
  for (const [value, message] of bad) {
    t.throws(() => loadConfig({ CORS_ORIGINS: value }), message, value)
    t.equal(String((() => { try { loadConfig({ CORS_ORIGINS: value }) } catch (error) { return (error as Error).message } })()).split('\n').length, 1, 'one line')
  }
  t.same(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173,https://app.example.com' }).CORS_ORIGINS, ['https://app.example.com', 'http://localhost:5173'])
  t.same(loadConfig({}).CORS_ORIGINS, [], 'none by default')

  const clients = (client: Record<string, unknown>, origins = PAGE): ReturnType<typeof loadConfig> =>
    loadConfig({ CORS_ORIGINS: origins, CLIENTS: JSON.stringify([{ client_id: 'web', grant_types: ['password', 'refresh_token'], ...client }]) })
  t.throws(() => clients({ refresh_token_delivery: 'header' }), /^CLIENTS\[0\]\.refresh_token_delivery must be one of body, cookie/)
  t.throws(() => clients({ allowed_origins: [PAGE] }), /^CLIENTS\[0\]\.allowed_origins applies only to a client with "refresh_token_delivery": "cookie"/)
  t.throws(() => clients({ refresh_token_delivery: 'cookie', allowed_origins: [ADMIN_PAGE] }), /^CLIENTS\[0\]\.allowed_origins "http:\/\/localhost:5174" is not in CORS_ORIGINS/)
  t.throws(() => clients({ refresh_token_delivery: 'cookie', allowed_origins: [] }), /^CLIENTS\[0\]\.allowed_origins must be a non-empty array/)
  t.throws(() => clients({ refresh_token_delivery: 'cookie', allowed_origins: ['http://localhost:5173/'] }), /^CLIENTS\[0\]\.allowed_origins .*not an exact origin/)
  t.match(clients({ refresh_token_delivery: 'cookie' }).CLIENTS.find((client) => client.client_id === 'web'), { refreshTokenDelivery: 'cookie', allowedOrigins: undefined })
  t.match(loadConfig({}).CLIENTS.find((client) => client.client_id === 'baton'), { refreshTokenDelivery: 'body' }, 'the built-in client is in body mode unless CLIENTS overrides it')
})

t.test('the access token a cookie-mode login gets is an ordinary one', async (t) => {
  const served = await serve(t)
  const { body } = await login(served)
  t.match(decodeJwt(body.access_token as string).payload, { client_id: 'baton', sid: String })
})
