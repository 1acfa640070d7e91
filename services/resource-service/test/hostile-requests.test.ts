import t from 'tap'
import type { AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setup, claims, signToken, rawRequest, statusOf, assertOddAuthorizationHeaders } from './helper.js'

t.test('hostile HTTP at the resource-service, over a real socket: a 4xx for each malformed request; what is merely extra is ignored', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const token = signToken(ed!, claims())
  const request = (head: string, body = ''): string => `${head}\r\nHost: x\r\n${body === '' ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`}\r\n${body}`

  const cases: Array<[string, string, number[]]> = [
    ['a header section over 16 KiB', request(`GET /me HTTP/1.1\r\nX-Filler: ${'a'.repeat(17 * 1024)}`), [431]],
    ['a 20 KB URL', request(`GET /me?${'q'.repeat(20_000)} HTTP/1.1`), [414, 431]],
    ['a NUL in the Authorization header', request('GET /me HTTP/1.1\r\nAuthorization: Bearer a\u0000b'), [400]],
    ['latin-1 bytes in the Authorization header', request(`GET /me HTTP/1.1\r\nAuthorization: Bearer ${token}\u00e9`), [400]],
    ['a malformed JSON body on GET /me', request('GET /me HTTP/1.1\r\nContent-Type: application/json', '{"a":'), [400, 401]],
    ['an unknown method', request('BREW /me HTTP/1.1'), [400, 404, 405]],
    ['POST to a GET route', request('POST /me HTTP/1.1'), [404, 405]],
    ['OPTIONS', request('OPTIONS /me HTTP/1.1'), [404, 405]],
    ['a NUL in the path', request('GET /%00 HTTP/1.1'), [400, 404]],
    ['path traversal', request('GET /..%2f..%2fetc%2fpasswd HTTP/1.1'), [400, 404]],
    ['garbage instead of HTTP', '\u0016\u0003\u0001\u0002\u0000 not http\r\n\r\n', [400]],
    ['request smuggling: Content-Length with Transfer-Encoding', 'POST /me HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', [400]]
  ]
  // Not malformed, only more than a request needs: the token alone decides.
  const ignored: Array<[string, string, number[]]> = [
    // Node keeps the first Authorization line of a request and drops the others.
    ['two Authorization lines, the valid token first', request(`GET /me HTTP/1.1\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer x.y.z`), [200]],
    ['two Authorization lines, the valid token second', request(`GET /me HTTP/1.1\r\nAuthorization: Bearer x.y.z\r\nAuthorization: Bearer ${token}`), [401]],
    // GET routes never parse a body: it is read past and dropped.
    ['a 20 KB body on GET /me', request(`GET /me HTTP/1.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json`, `{"a":"${'x'.repeat(20_000)}"}`), [200]]
  ]
  for (const [name, bytes, expected] of [...cases, ...ignored]) {
    const answer = await rawRequest(port, bytes)
    const status = statusOf(answer)
    t.ok(expected.includes(status), `${name}: ${status}, expected ${expected.join(' or ')}`)
    // Node's own refusals (431, garbage) included: no browser may sniff any answer into HTML.
    t.match(answer, /\r\nx-content-type-options: nosniff\r\n/i, `${name}: X-Content-Type-Options: nosniff`)
  }
  for (const path of ['/me', '/reports', '/healthz', '/readyz', '/metrics', '/nowhere', '/me/%zz', '/openapi.json', '/docs']) {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' })
    t.equal(response.headers.get('x-content-type-options'), 'nosniff', `GET ${path} (${response.status}): nosniff`)
  }
  const ok = await fetch(`http://127.0.0.1:${port}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(ok.status, 200, 'the service still serves a genuine request afterwards')
})

t.test('odd Authorization headers get RFC 6750 answers', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  const token = signToken(ed!, claims())
  await assertOddAuthorizationHeaders(t, app, '/me', token)
})

t.test('a flood of bad tokens does not stall the event loop', async (t) => {
  const { app, keys: [ed] } = await setup(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  const token = signToken(ed!, claims())
  const bad = Array.from({ length: 300 }, (_, i) => `${token.slice(0, -3)}${String(i).padStart(3, '0')}`)
  const statuses = await Promise.all(bad.map(async (value) => (await fetch(`http://127.0.0.1:${port}/me`, { headers: { authorization: `Bearer ${value}` } })).status))
  histogram.disable()
  t.same([...new Set(statuses)], [401])
  // A stall is one token holding the loop for seconds; each refusal takes well under a millisecond, the rest is a loaded machine.
  t.ok(histogram.max / 1e6 < 3000, `longest event-loop delay ${(histogram.max / 1e6).toFixed(1)} ms`)
})
