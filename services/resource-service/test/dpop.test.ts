// The API takes Bearer and DPoP-bound tokens (RFC 9449 §7) on a real socket:
// a client holding the key gets its answers, a thief holding only the token
// gets 401s, whatever it replays or redirects.
import t, { type Test } from 'tap'
import { ConfigError } from '@baton/service-kit'
import { loadConfig } from '../src/config.js'
import { BARE_CHALLENGES, claims, generateProofKey, setup, signProof, signToken, type ProofKey } from './helper.js'

interface Api {
  url: string
  get: (path: string, headers: Record<string, string>) => Promise<Response>
  metrics: () => Promise<string>
}

async function listen (t: Test, env: Record<string, string> = {}): Promise<Api & Awaited<ReturnType<typeof setup>>> {
  const context = await setup(t, env)
  const url = await context.app.listen({ host: '127.0.0.1', port: 0 })
  return {
    ...context,
    url,
    get: async (path, headers) => await fetch(`${url}${path}`, { headers }),
    metrics: async () => (await context.app.inject({ url: '/metrics' })).body
  }
}

t.test('a DPoP-bound token with its key\'s proofs: 200; the same token without the key: 401 every way', async (t) => {
  const api = await listen(t)
  const [ed] = api.keys
  const key = await generateProofKey('ES256')
  const thief = await generateProofKey('ES256')
  const token = signToken(ed!, claims({ scope: 'profile reports:read', cnf: { jkt: key.jkt } }, api.clock.now()))
  const proof = async (path: string, by: ProofKey = key, htm = 'GET'): Promise<string> =>
    await signProof(by, { htm, htu: `${api.url}${path}`, accessToken: token, nowMs: api.clock.now() })
  const dpop = async (path: string, proofText: string): Promise<Response> => await api.get(path, { authorization: `DPoP ${token}`, dpop: proofText })

  const me = await dpop('/me', await proof('/me'))
  t.equal(me.status, 200, '/me with a proof')
  t.match(await me.json(), { sub: 'user-1', scope: 'profile reports:read' })
  t.equal((await dpop('/reports', await proof('/reports'))).status, 200, '/reports with a proof')

  const asBearer = await api.get('/me', { authorization: `Bearer ${token}` })
  t.equal(asBearer.status, 401, 'as Bearer: 401')
  t.match(asBearer.headers.get('www-authenticate'), /^Bearer realm="baton", error="invalid_token", error_description="the access token is bound to a key[^"]*", DPoP realm="baton", algs="/)

  const stolen = await dpop('/me', await proof('/me', thief))
  t.equal(stolen.status, 401, 'with the thief\'s own proof: 401')
  t.same(await stolen.json(), { error: 'invalid_dpop_proof', error_description: 'the DPoP proof is signed with another key than the one the token is bound to' })

  const seen = await proof('/me')
  t.equal((await dpop('/me', seen)).status, 200)
  const replayed = await dpop('/me', seen)
  t.equal(replayed.status, 401, 'a replayed proof: 401')
  t.match(replayed.headers.get('www-authenticate'), /^DPoP realm="baton", error="invalid_dpop_proof", error_description="the DPoP proof has been used before", algs="[^"]+"$/)

  t.equal((await dpop('/me', await proof('/reports'))).status, 401, 'a proof for another URL: 401')
  t.equal((await dpop('/me', await proof('/me', key, 'POST'))).status, 401, 'a proof for another method: 401')
  const old = await signProof(key, { htu: `${api.url}/me`, accessToken: token, nowMs: api.clock.now() - 120_000 })
  t.equal((await dpop('/me', old)).status, 401, 'a proof issued two minutes ago: 401')

  const missing = await api.get('/me', { authorization: `DPoP ${token}` })
  t.equal(missing.status, 401, 'no proof: 401')
  t.match(missing.headers.get('www-authenticate'), /^DPoP realm="baton", error="invalid_dpop_proof", error_description="a DPoP proof is required", algs="ES256 [^"]*"$/)
  t.equal(missing.headers.get('cache-control'), 'no-store')

  const metrics = await api.metrics()
  t.match(metrics, /baton_verify_failures_total\{reason="dpop_bound"\} 1/, 'refusals counted by reason: the downgrade')
  t.match(metrics, /baton_verify_failures_total\{reason="dpop_key"\} 1/, 'the other key')
  t.match(metrics, /baton_verify_failures_total\{reason="dpop_replay"\} 1/, 'the replay')
})

t.test('Bearer tokens keep working beside DPoP, and no credentials get both challenges', async (t) => {
  const api = await listen(t)
  const token = signToken(api.keys[0]!, claims({ scope: 'profile reports:read' }, api.clock.now()))
  t.equal((await api.get('/reports', { authorization: `Bearer ${token}` })).status, 200, 'a bearer token: 200')
  const none = await api.get('/me', {})
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), BARE_CHALLENGES)
})

t.test('PUBLIC_URL: behind a proxy, proofs name the URL clients call', async (t) => {
  const api = await listen(t, { PUBLIC_URL: 'https://api.example.com/' })
  const key = await generateProofKey('EdDSA')
  const token = signToken(api.keys[1]!, claims({ cnf: { jkt: key.jkt } }, api.clock.now()))
  const at = async (htu: string): Promise<number> =>
    (await api.get('/me', { authorization: `DPoP ${token}`, dpop: await signProof(key, { htu, accessToken: token, nowMs: api.clock.now() }) })).status
  t.equal(await at('https://api.example.com/me'), 200, 'the public URL')
  t.equal(await at(`${api.url}/me`), 401, 'not the address the service listens on')

  t.equal(loadConfig({ PUBLIC_URL: 'https://api.example.com/v1/' }).PUBLIC_URL, 'https://api.example.com/v1')
  t.equal(loadConfig({}).PUBLIC_URL, undefined)
  for (const bad of ['api.example.com', 'ftp://api.example.com', 'https://api.example.com/?x=1', 'https://user:pw@api.example.com']) {
    t.throws(() => loadConfig({ PUBLIC_URL: bad }), ConfigError, bad)
  }
})

t.test('CORS: a page may send the DPoP header and read DPoP-Nonce', async (t) => {
  const { app } = await setup(t, { CORS_ORIGINS: 'http://localhost:3000' })
  const preflight = await app.inject({
    method: 'OPTIONS', url: '/me', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, dpop' }
  })
  t.equal(preflight.statusCode, 204)
  t.match(preflight.headers['access-control-allow-headers'], /\bdpop\b/)
  const refused = await app.inject({ url: '/me', headers: { origin: 'http://localhost:3000' } })
  t.match(refused.headers['access-control-expose-headers'], /dpop-nonce/i)
})
