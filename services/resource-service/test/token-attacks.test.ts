import t from 'tap'
import type { AddressInfo } from 'node:net'
import { setup, claims, generateTestKey, signToken, startJwksServer } from './helper.js'
import { forgeries } from '../../../packages/verifier/test/forgeries.js'

t.test('hostile tokens over a real socket: 401 invalid_token on every route, no fetch they ask for, no 5xx', async (t) => {
  const { app, jwks, keys: [ed, ec] } = await setup(t)
  let trapHits = 0
  const trap = await startJwksServer([generateTestKey('EdDSA', 'attacker')], {
    routes: (server) => { server.addHook('onRequest', async () => { trapHits += 1 }) }
  })
  t.teardown(trap.close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  // The service's own clock is the test clock, started at the real time: tokens are made for now.
  const genuine = claims({ scope: 'profile reports:read' })
  const call = async (path: string, token: string): Promise<Response> => await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } })

  t.equal((await call('/me', signToken(ed!, genuine))).status, 200, 'the genuine token passes')
  t.equal((await call('/reports', signToken(ed!, genuine))).status, 200)

  const fetchesBefore = jwks.hits()
  const list = forgeries({ ed: ed!, ec: ec!, genuine, trap: trap.url })
  const failures: string[] = []
  for (const { kind, name, token, malformedHeader } of list) {
    for (const path of ['/me', '/reports']) {
      const response = await call(path, token)
      const body = await response.json() as { error?: string }
      if (token.length > 16 * 1024) {
        // Node refuses the header section before any route runs.
        if (response.status !== 431) failures.push(`${path} ${kind}: ${name} → ${response.status}, not 431`)
        continue
      }
      const [status, error] = malformedHeader === true ? [400, 'invalid_request'] : [401, 'invalid_token']
      const challenge = response.headers.get('www-authenticate') ?? ''
      if (response.status !== status || body.error !== error || !challenge.includes(`error="${error}"`)) {
        failures.push(`${path} ${kind}: ${name} → ${response.status} ${JSON.stringify(body)}`)
      }
    }
  }
  t.same(failures, [], `all ${list.length} hostile tokens refused on both routes`)
  t.equal(trapHits, 0, 'no header made the service fetch anything')
  t.ok(jwks.hits() - fetchesBefore <= 1, 'made-up kids cost at most one rate-limited JWKS fetch')
  t.equal((await call('/me', signToken(ed!, genuine))).status, 200, 'and the genuine token still passes afterwards')
})
