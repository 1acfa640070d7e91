// The node:http adapter's own behaviour; what every adapter answers is in
// attacks.test.ts and property.test.ts.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { VerifierOptions } from '../src/index.js'
import { nodeVerifier } from '../src/node.js'
import { AUDIENCE, ISSUER, claims, generateTestKey, signToken } from './helper.js'

const ed = generateTestKey('EdDSA')
const keys = [{ kid: ed.kid, publicKey: ed.publicKey }]

/** A server whose handler records what `authenticate` resolved to, or the error it rejected with. */
async function serve (t: Test, options: Partial<VerifierOptions> = {}): Promise<{ url: string, outcomes: unknown[], reasons: string[] }> {
  const reasons: string[] = []
  const baton = nodeVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, onRefused: (error) => { reasons.push(error.reason) }, ...options })
  const outcomes: unknown[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    baton.authenticate(req, res).then((claims) => {
      outcomes.push(claims)
      if (claims !== undefined) res.end(JSON.stringify({ sub: claims.sub }))
    }, (error: unknown) => {
      outcomes.push(error)
      res.writeHead(500).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { baton.close(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, outcomes, reasons }
}

t.test('authenticate resolves to the claims, or writes the refusal and resolves to undefined', async (t) => {
  const { url, outcomes, reasons } = await serve(t)
  const ok = await fetch(url, { headers: { authorization: `Bearer ${signToken(ed, claims())}` } })
  t.same(await ok.json(), { sub: 'user-1' })
  const refused = await fetch(url, { headers: { authorization: 'Bearer a b' } })
  t.equal(refused.status, 400)
  t.equal(refused.headers.get('content-type'), 'application/json; charset=utf-8')
  t.same(await refused.json(), { error: 'invalid_request', error_description: 'the Authorization header must be Bearer followed by one token' })
  t.match(outcomes, [{ sub: 'user-1' }, undefined])
  t.same(reasons, ['malformed'], 'onRefused was told')
})

t.test('a key-set outage is written as a 503; an unexpected error rejects, for the server to handle', async (t) => {
  const outage = await serve(t, { keys: undefined, keySource: { getKey: async () => { throw new Error('disk on fire') }, ready: () => true } })
  const unavailable = await fetch(outage.url, { headers: { authorization: `Bearer ${signToken(ed, claims())}` } })
  t.equal(unavailable.status, 503)
  t.equal(unavailable.headers.get('cache-control'), 'no-store')
  t.same(await unavailable.json(), { error: 'temporarily_unavailable', error_description: 'verification keys are unavailable' })

  const broken = await serve(t, { isRevoked: () => { throw new TypeError('a bug in isRevoked') } })
  t.equal((await fetch(broken.url, { headers: { authorization: `Bearer ${signToken(ed, claims())}` } })).status, 500)
  t.match(broken.outcomes, [{ name: 'TypeError', message: 'a bug in isRevoked' }])
})
