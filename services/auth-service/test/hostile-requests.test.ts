import t from 'tap'
import type { AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { setup, register, login, bearer } from './helper.js'
import { rawRequest, statusOf, assertOddAuthorizationHeaders } from '../../../packages/verifier/test/helper.js'

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

const LIMITS = { RATE_LIMIT_ACCOUNT_FAILURES: '1000000', RATE_LIMIT_IP_FAILURES: '1000000', RATE_LIMIT_IP_ATTEMPTS: '1000000' }

t.test('bodies: too large, malformed, of the wrong type, or shaped to attack the parser', async (t) => {
  const { app } = await setup(t, LIMITS)
  const json = { 'content-type': 'application/json' }
  const cases: Array<[string, { headers?: Record<string, string>, payload: string | Buffer }, number, string]> = [
    ['a body over BODY_LIMIT', { headers: json, payload: JSON.stringify({ grant_type: 'password', username: 'x', password: 'p'.repeat(20_000) }) }, 413, 'invalid_request'],
    ['truncated JSON', { headers: json, payload: '{"grant_type":"password","username":' }, 400, 'invalid_request'],
    ['trailing garbage', { headers: json, payload: '{"grant_type":"password"} x' }, 400, 'invalid_request'],
    ['a byte-order mark', { headers: json, payload: '\ufeff{"grant_type":"password"}' }, 400, 'invalid_request'],
    ['JSON nested 5,000 deep', { headers: json, payload: `{"grant_type":${'['.repeat(5000)}${']'.repeat(5000)}}` }, 400, 'invalid_request'],
    ['an unclosed array 15,000 deep', { headers: json, payload: '['.repeat(15_000) }, 400, 'invalid_request'],
    ['a JSON array', { headers: json, payload: '[1,2,3]' }, 400, 'invalid_request'],
    ['a JSON string', { headers: json, payload: '"password"' }, 400, 'invalid_request'],
    ['JSON null', { headers: json, payload: 'null' }, 400, 'invalid_request'],
    ['an empty JSON body', { headers: json, payload: '' }, 400, 'invalid_request'],
    ['__proto__ in JSON', { headers: json, payload: '{"grant_type":"password","__proto__":{"polluted":true}}' }, 400, 'invalid_request'],
    ['constructor.prototype in JSON', { headers: json, payload: '{"grant_type":"password","constructor":{"prototype":{"polluted":true}}}' }, 400, 'invalid_request'],
    ['a NoSQL operator for a string', { headers: json, payload: '{"grant_type":"password","username":{"$ne":""},"password":{"$ne":""}}' }, 400, 'invalid_request'],
    ['an array for a string', { headers: json, payload: '{"grant_type":"password","username":["a","b"],"password":"x"}' }, 400, 'invalid_request'],
    ['a number for a string', { headers: json, payload: '{"grant_type":"password","username":"alice","password":12345678}' }, 400, 'invalid_request'],
    ['a boolean for a string', { headers: json, payload: '{"grant_type":true}' }, 400, 'invalid_request'],
    ['null for a string', { headers: json, payload: '{"grant_type":null}' }, 400, 'invalid_request'],
    ['a 10 KB username', { headers: json, payload: JSON.stringify({ grant_type: 'password', username: 'u'.repeat(10_000), password: 'x' }) }, 400, 'invalid_request'],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, payload: 'grant_type=password' }, 415, 'invalid_request'],
    ['multipart/form-data', { headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: '--x\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\npassword\r\n--x--' }, 415, 'invalid_request'],
    ['application/xml', { headers: { 'content-type': 'application/xml' }, payload: '<grant_type>password</grant_type>' }, 415, 'invalid_request'],
    ['a made-up content type', { headers: { 'content-type': 'application/x-baton' }, payload: '{}' }, 415, 'invalid_request'],
    ['a content type with junk parameters', { headers: { 'content-type': 'application/json; charset=utf-8; x="y' }, payload: '{"grant_type":"nope"}' }, 400, 'unsupported_grant_type'],
    ['JSON declared as UTF-16', { headers: { 'content-type': 'application/json; charset=utf-16' }, payload: Buffer.from('{"grant_type":"nope"}', 'utf16le') }, 400, 'invalid_request'],
    ['__proto__ in a form body', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&__proto__[polluted]=true&__proto__=x&constructor[prototype][polluted]=1' }, 400, 'invalid_request'],
    ['a form field given twice', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&grant_type=refresh_token' }, 400, 'invalid_request'],
    ['a form body with 1,400 fields', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: Array.from({ length: 1400 }, (_, i) => `f${i}=${i}`).join('&') }, 400, 'invalid_request']
  ]
  for (const [name, request, status, error] of cases) {
    const response = await app.inject({ method: 'POST', url: '/oauth/token', ...request })
    t.match({ status: response.statusCode, body: response.json() }, { status, body: { error: new RegExp(`^${error}$`), error_description: String } }, name)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
  t.equal((Object.prototype as unknown as Record<string, unknown>).polluted, undefined)

  // The same hostile bodies at the other endpoints that take a body: a 4xx every time.
  const user = await register(app, 'bodies')
  const tokens = await login(app, 'bodies', user.password)
  for (const url of ['/users', '/oauth/revoke', '/oauth/introspect', '/users/me/password']) {
    for (const [name, request] of cases) {
      const response = await app.inject({ method: 'POST', url, ...request, headers: { ...request.headers, ...bearer(tokens.access_token) } })
      t.ok(response.statusCode >= 400 && response.statusCode < 500, `${url}, ${name}: ${response.statusCode}`)
    }
  }
})

t.test('over a real socket: 413 for big bodies however they are framed, 431 for big headers, 4xx for junk', async (t) => {
  const { app } = await setup(t, LIMITS)
  const port = await listen(app)
  const big = JSON.stringify({ grant_type: 'password', password: 'p'.repeat(40_000) })
  const declared = await rawRequest(port, `POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n${big}`)
  t.equal(statusOf(declared), 413, 'Content-Length over the limit')
  const chunked = await rawRequest(port, `POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`)
  t.equal(statusOf(chunked), 413, 'chunked, with no Content-Length')
  const lying = await rawRequest(port, `POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n${big}`)
  t.ok(statusOf(lying) >= 400 && statusOf(lying) < 500, `a Content-Length smaller than the body: ${statusOf(lying)}`)
  const smuggled = await rawRequest(port, `POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
  t.equal(statusOf(smuggled), 400, 'Content-Length together with Transfer-Encoding (request smuggling) is refused')

  const headers = await rawRequest(port, `GET /sessions HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  t.equal(statusOf(headers), 431, 'a header section over 16 KiB')
  const many = await rawRequest(port, `GET /sessions HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`)
  t.ok([400, 431].includes(statusOf(many)), `3,000 headers: ${statusOf(many)}`)
  const url = await rawRequest(port, `GET /sessions?${'q'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.ok([414, 431].includes(statusOf(url)), `a 20 KB URL: ${statusOf(url)}`)
  const nul = await rawRequest(port, 'GET /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\u0000b\r\n\r\n')
  t.equal(statusOf(nul), 400, 'a NUL in a header')
  const garbage = await rawRequest(port, '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u01fc\u0003\u0003 not http at all\r\n\r\n')
  t.equal(statusOf(garbage), 400, 'a TLS hello, or any garbage, sent to the plain-HTTP port')
  const twoAuthorizations = await rawRequest(port, 'GET /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\n\r\n')
  t.ok([400, 401].includes(statusOf(twoAuthorizations)), `two Authorization lines: ${statusOf(twoAuthorizations)}`)
  const params = await rawRequest(port, `GET /.well-known/jwks.json?${Array.from({ length: 1000 }, (_, i) => `p${i}=1`).join('&')} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.equal(statusOf(params), 200, 'a thousand query parameters where none are read change nothing')
  const paths: Record<string, string> = {}
  for (const path of ['/%00', '/..%2f..%2fetc%2fpasswd', '/sessions/%ff', '/sessions/..%2F..%2F', `/${'%'.repeat(100)}`]) {
    const answer = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
    t.ok(statusOf(answer) >= 400 && statusOf(answer) < 500, `GET ${path}: ${statusOf(answer)}`)
    paths[path] = answer
  }
  // Also what Node's parser refuses before Fastify sees a request (431, 400 for garbage).
  for (const [name, answer] of Object.entries({ declared, chunked, lying, smuggled, headers, many, url, nul, garbage, twoAuthorizations, params, ...paths })) {
    t.match(answer, /\r\nx-content-type-options: nosniff\r\n/i, `${name} (${statusOf(answer)}): X-Content-Type-Options: nosniff`)
  }
  t.match(headers, /\r\n\r\n\{"error":"invalid_request","error_description":"[^"]+"\}$/, 'the 431 has the error body every other refusal has')
})

t.test('X-Content-Type-Options: nosniff on every answer: success, errors, 404, 413, 415, probes, metrics, documentation', async (t) => {
  const { app } = await setup(t, LIMITS)
  const user = await register(app, 'sniffer')
  const tokens = await login(app, 'sniffer', user.password)
  const requests: Array<[string, Parameters<typeof app.inject>[0] & object]> = [
    ['a registration', { method: 'POST', url: '/users', payload: { username: 'sniffed', password: 'correct horse battery' } }],
    ['a login', { method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'sniffer', password: user.password } }],
    ['a wrong password', { method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'sniffer', password: 'not the password' } }],
    ['sessions', { url: '/sessions', headers: bearer(tokens.access_token) }],
    ['no token', { url: '/sessions' }],
    ['a 404', { url: '/nowhere' }],
    ['a 404 for a method', { method: 'PUT', url: '/oauth/token' }],
    ['a URL Fastify cannot decode', { url: '/sessions/%zz' }],
    ['a 413', { method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ password: 'p'.repeat(20_000) }) }],
    ['a 415', { method: 'POST', url: '/oauth/token', headers: { 'content-type': 'text/plain' }, payload: 'x' }],
    ['/healthz', { url: '/healthz' }],
    ['/readyz', { url: '/readyz' }],
    ['/metrics', { url: '/metrics' }],
    ['the JWKS', { url: '/.well-known/jwks.json' }],
    ['the metadata', { url: '/.well-known/oauth-authorization-server' }],
    ['the OpenAPI document', { url: '/openapi.json' }],
    ['the documentation page', { url: '/docs' }]
  ]
  const statuses = new Set<number>()
  for (const [name, request] of requests) {
    const response = await app.inject(request)
    statuses.add(response.statusCode)
    t.equal(response.headers['x-content-type-options'], 'nosniff', `${name} (${response.statusCode})`)
  }
  t.same([...statuses].filter((status) => status >= 400).sort(), [400, 401, 404, 413, 415], 'errors of every kind were among them')
})

t.test('a complete body with a member named __proto__, constructor or prototype: 400 at every route, as JSON and as a form (415 for a form at /users), and nothing done', async (t) => {
  const secret = 'resource-server-secret-0123456789'
  const { app } = await setup(t, { ...LIMITS, CLIENTS: JSON.stringify([{ client_id: 'rs', client_secret: secret, grant_types: [], introspection: true }]) })
  const user = await register(app, 'proto-owner')
  const tokens = await login(app, 'proto-owner', user.password)
  const sessions = async (): Promise<number> => (await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).json<{ sessions: unknown[] }>().sessions.length
  t.equal(await sessions(), 1)
  const routes: Array<[string, Record<string, string>, Record<string, string>]> = [
    ['/users', { username: 'proto-newcomer', password: 'correct horse battery' }, {}],
    ['/oauth/token', { grant_type: 'password', username: 'proto-owner', password: user.password }, {}],
    ['/oauth/revoke', { token: tokens.refresh_token }, {}],
    ['/oauth/introspect', { token: tokens.access_token }, { authorization: `Basic ${Buffer.from(`rs:${secret}`).toString('base64')}` }],
    ['/users/me/password', { current_password: user.password, new_password: 'another horse battery' }, bearer(tokens.access_token)]
  ]
  for (const name of ['__proto__', 'constructor', 'prototype']) {
    for (const [url, fields, headers] of routes) {
      const bodies: Array<[string, string, string]> = [
        ['form', 'application/x-www-form-urlencoded', `${new URLSearchParams(fields).toString()}&${name}=x`],
        ['form, first', 'application/x-www-form-urlencoded', `${name}=x&${new URLSearchParams(fields).toString()}`],
        ['JSON', 'application/json', JSON.stringify(fields).replace(/\}$/, `,"${name}":"x"}`)],
        ['JSON, an object', 'application/json', JSON.stringify(fields).replace(/\}$/, `,"${name}":{"polluted":true}}`)]
      ]
      for (const [format, contentType, payload] of bodies) {
        const response = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': contentType }, payload })
        // /users takes JSON only: a form is refused before any parser reads it.
        const expected = url === '/users' && contentType !== 'application/json' ? 415 : 400
        t.match({ status: response.statusCode, body: response.json() }, { status: expected, ...(expected === 400 ? { body: { error: /^invalid_request$/ } } : {}) }, `${url}, ${name} in a ${format} body`)
      }
    }
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
  t.equal(await sessions(), 1, 'no login created a session, no revocation ended one')
  const introspected = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: routes[3]![2], payload: { token: tokens.refresh_token } })
  t.match(introspected.json(), { active: true }, 'the refresh token was not revoked')
  t.equal((await app.inject({ method: 'POST', url: '/users', payload: { username: 'proto-newcomer', password: 'correct horse battery' } })).statusCode, 201, 'the name was not taken by a refused registration')
  t.equal((await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'proto-owner', password: user.password } })).statusCode, 200, 'the password was not changed')
})

t.test('odd Authorization headers get RFC 6750 answers, never a 5xx', async (t) => {
  const { app } = await setup(t, LIMITS)
  const user = await register(app, 'oddheaders')
  const { access_token: token } = await login(app, 'oddheaders', user.password)
  await assertOddAuthorizationHeaders(t, app, '/sessions', token)
})

t.test('hostile traffic never stalls the event loop: /healthz keeps answering', async (t) => {
  const { app } = await setup(t, LIMITS)
  const port = await listen(app)
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  const deep = `{"grant_type":${'['.repeat(5000)}${']'.repeat(5000)}}`
  const wide = Array.from({ length: 1500 }, (_, i) => `f${i}=${'v'.repeat(5)}`).join('&')
  const hostile = Array.from({ length: 60 }, async (_, i) => await fetch(`http://127.0.0.1:${port}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': i % 2 === 0 ? 'application/json' : 'application/x-www-form-urlencoded' },
    body: i % 2 === 0 ? deep : wide
  }).then((response) => response.status))
  const probes: number[] = []
  for (let i = 0; i < 10; i++) {
    const started = performance.now()
    const response = await fetch(`http://127.0.0.1:${port}/healthz`)
    probes.push(performance.now() - started)
    t.equal(response.status, 200)
  }
  const statuses = await Promise.all(hostile)
  histogram.disable()
  t.ok(statuses.every((status) => status === 400 || status === 413), `hostile bodies answered ${[...new Set(statuses)].join(', ')}`)
  const maxDelayMs = histogram.max / 1e6
  // A stall is one body holding the loop for seconds (each takes milliseconds to refuse).
  t.ok(maxDelayMs < 3000, `longest event-loop delay ${maxDelayMs.toFixed(1)} ms`)
  // A probe queues behind the 60 bodies sent before it: a few seconds on a machine busy with
  // other work (5 s seen), far more if each body cost the service a real fraction of a second.
  t.ok(Math.max(...probes) < 15_000, `slowest /healthz during the attack ${Math.max(...probes).toFixed(1)} ms`)
})
