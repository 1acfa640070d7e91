// DPoP-bound tokens (RFC 9449 §7) against every adapter, over real sockets:
// what a client with the key gets, and what a thief with only the token gets.
import t, { type Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { createDpopNonces, DPOP_ALGORITHMS } from '../src/dpop.js'
import type { AdapterOptions } from '../src/adapter.js'
import { ADAPTERS, startAdapterApp, type AdapterApp, type AdapterName } from './adapters.js'
import { AUDIENCE, ISSUER, claims, generateProofKey, generateTestKey, signProof, signToken } from './helper.js'

const ed = generateTestKey('EdDSA')
const keys = [{ kid: ed.kid, publicKey: ed.publicKey }]
const ALGS = `algs="${DPOP_ALGORITHMS.join(' ')}"`

async function start (t: Test, name: AdapterName, options: Partial<AdapterOptions> = {}): Promise<AdapterApp> {
  return await startAdapterApp(t, name, { keys, issuer: ISSUER, audience: AUDIENCE, dpop: true, ...options } as AdapterOptions)
}

/** `DPoP <token>` with a proof for `method` `url` signed by `key`. */
function dpopHeaders (token: string, proof: string): Record<string, string> {
  return { authorization: `DPoP ${token}`, dpop: proof }
}

for (const name of ADAPTERS) {
  t.test(`${name}: a DPoP-bound token works with its key's proofs, and is worth nothing without them`, async (t) => {
    const app = await start(t, name)
    const key = await generateProofKey('ES256')
    const thief = await generateProofKey('ES256')
    const token = signToken(ed, claims({ scope: 'profile', cnf: { jkt: key.jkt } }))
    const me = `${app.url}/me`
    const proof = async (overrides: { htm?: string, htu?: string } = {}): Promise<string> =>
      await signProof(key, { htu: me, accessToken: token, ...overrides })

    const valid = await app.send('/me', dpopHeaders(token, await proof()))
    t.equal(valid.status, 200, 'a valid DPoP request: 200')
    t.match(valid.body, { sub: 'user-1', cnf: { jkt: key.jkt } }, 'with the claims, cnf among them')
    t.equal((await app.send('/me?page=2', dpopHeaders(token, await proof()))).status, 200, 'a query is not part of htu')

    const downgrade = await app.send('/me', { authorization: `Bearer ${token}` })
    t.equal(downgrade.status, 401, 'the bound token as Bearer: 401')
    t.equal(downgrade.challenge, `Bearer realm="baton", error="invalid_token", error_description="the access token is bound to a key: send it with the DPoP scheme and a DPoP proof", DPoP realm="baton", ${ALGS}`)

    const stolen = await app.send('/me', dpopHeaders(token, await signProof(thief, { htu: me, accessToken: token })))
    t.equal(stolen.status, 401, 'another key\'s proof: 401')
    t.equal(stolen.challenge, `DPoP realm="baton", error="invalid_dpop_proof", error_description="the DPoP proof is signed with another key than the one the token is bound to", ${ALGS}`)

    const once = await proof()
    t.equal((await app.send('/me', dpopHeaders(token, once))).status, 200, 'a proof used once')
    const replayed = await app.send('/me', dpopHeaders(token, once))
    t.equal(replayed.status, 401, 'the same proof again: 401')
    t.match(replayed.challenge, /^DPoP realm="baton", error="invalid_dpop_proof", error_description="the DPoP proof has been used before"/)

    const elsewhere = await app.send('/me', dpopHeaders(token, await proof({ htu: `${app.url}/reports` })))
    t.equal(elsewhere.status, 401, 'a proof for another URL: 401')
    t.match(elsewhere.challenge, /error="invalid_dpop_proof", error_description="the DPoP proof is for another URL"/)
    const otherMethod = await app.send('/me', dpopHeaders(token, await proof({ htm: 'POST' })))
    t.equal(otherMethod.status, 401, 'a proof for another method: 401')
    t.match(otherMethod.challenge, /error_description="the DPoP proof is for another HTTP method"/)
    const otherToken = await app.send('/me', dpopHeaders(token, await signProof(key, { htu: me, accessToken: 'another.access.token' })))
    t.equal(otherToken.status, 401, 'a proof made for another access token (ath): 401')

    const noProof = await app.send('/me', { authorization: `DPoP ${token}` })
    t.equal(noProof.status, 401, 'no proof: 401')
    t.equal(noProof.challenge, `DPoP realm="baton", error="invalid_dpop_proof", error_description="a DPoP proof is required", ${ALGS}`)
    t.same(noProof.body, { error: 'invalid_dpop_proof', error_description: 'a DPoP proof is required' })
    t.equal(noProof.headers.get('cache-control'), 'no-store')

    const none = await app.send('/me', {})
    t.equal(none.status, 401, 'no credentials: 401')
    t.equal(none.challenge, 'Bearer realm="baton"', 'the bare Bearer challenge, as without DPoP')
    t.same(none.body, { error_description: 'an access token is required' })

    const forbidden = await app.send('/reports', dpopHeaders(token, await signProof(key, { htu: `${app.url}/reports`, accessToken: token })))
    t.equal(forbidden.status, 403, 'a valid proof, a scope missing: 403')
    t.equal(forbidden.challenge, `DPoP realm="baton", error="insufficient_scope", error_description="the access token lacks the scope reports:read", scope="reports:read", ${ALGS}`)
  })

  t.test(`${name}: a bearer token stays a bearer token`, async (t) => {
    const app = await start(t, name)
    const key = await generateProofKey('EdDSA')
    const token = signToken(ed, claims({ scope: 'profile reports:read' }))
    t.equal((await app.get('/reports', `Bearer ${token}`)).status, 200, 'as Bearer: 200')
    const unbound = await app.send('/me', dpopHeaders(token, await signProof(key, { htu: `${app.url}/me`, accessToken: token })))
    t.equal(unbound.status, 401, 'under the DPoP scheme without cnf: 401')
    t.equal(unbound.challenge, `DPoP realm="baton", error="invalid_token", error_description="the access token is not bound to a key: send it with the Bearer scheme", ${ALGS}`)
    const malformed = await app.send('/me', { authorization: 'DPoP two tokens' })
    t.equal(malformed.status, 400, 'a malformed DPoP header: 400')
    t.match(malformed.challenge, /^DPoP realm="baton", error="invalid_request"/)
  })
}

t.test('without the dpop option a bound token is refused under either scheme, and only Bearer is offered', async (t) => {
  const app = await start(t, 'fastify', { dpop: false })
  const key = await generateProofKey()
  const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
  const bearer = await app.get('/me', `Bearer ${token}`)
  t.equal(bearer.status, 401)
  t.equal(bearer.challenge, 'Bearer realm="baton", error="invalid_token", error_description="the access token is bound to a key: send it with the DPoP scheme and a DPoP proof"')
  const dpop = await app.send('/me', dpopHeaders(token, await signProof(key, { htu: `${app.url}/me`, accessToken: token })))
  t.equal(dpop.status, 401)
  t.equal(dpop.challenge, 'Bearer realm="baton"', 'an unknown scheme: the bare Bearer challenge')
})

t.test('publicUrl: proofs name the URL clients call, not the one the app listens on', async (t) => {
  for (const name of ADAPTERS) {
    const app = await start(t, name, { publicUrl: 'https://api.example.com/v1/' })
    const key = await generateProofKey()
    const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
    t.equal((await app.send('/me', dpopHeaders(token, await signProof(key, { htu: 'https://api.example.com/v1/me', accessToken: token })))).status, 200, `${name}: the public URL`)
    t.equal((await app.send('/me', dpopHeaders(token, await signProof(key, { htu: `${app.url}/me`, accessToken: token })))).status, 401, `${name}: not the local one`)
  }
  await t.rejects(startAdapterApp(t, 'node:http', { keys, issuer: ISSUER, audience: AUDIENCE, publicUrl: 'https://api.example.com/?x=1' }), /publicUrl/)
})

/** The status of GET `path` with a Host header of the client's choosing (undefined: none, over HTTP/1.0), which fetch cannot send. */
async function statusWithHost (url: string, path: string, host: string | undefined, headers: Record<string, string>): Promise<number> {
  const { port } = new URL(url)
  if (host === undefined) {
    return await new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.end(`GET ${path} HTTP/1.0\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`)
      })
      let answer = ''
      socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
      socket.on('end', () => { resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1])) })
      socket.on('error', reject)
    })
  }
  return await new Promise((resolve, reject) => {
    const sent = httpRequest({ host: '127.0.0.1', port, path, headers: { ...headers, host } }, (response) => {
      response.resume()
      response.on('end', () => { resolve(response.statusCode!) })
    })
    sent.on('error', reject)
    sent.end()
  })
}

t.test('without publicUrl, the Host header names the host of htu, never its path', async (t) => {
  for (const name of ADAPTERS) {
    const app = await start(t, name)
    const key = await generateProofKey()
    const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
    const send = async (host: string | undefined, htu: string): Promise<number> =>
      await statusWithHost(app.url, '/me', host, dpopHeaders(token, await signProof(key, { htu, accessToken: token })))
    t.equal(await send('api.example.com', 'http://api.example.com/me'), 200, `${name}: a host of the client's naming, with the request's path`)
    t.equal(await send('api.example.com:8080', 'http://api.example.com:8080/me'), 200, `${name}: with a port`)
    t.equal(await send('[::1]:8080', 'http://[::1]:8080/me'), 200, `${name}: an IPv6 literal`)
    t.equal(await send('api_1:3002', 'http://api_1:3002/me'), 200, `${name}: a container's name`)
    // A delimiter in the Host header would end the authority and move the
    // path: a proof made out to another URL (its root, or a longer path)
    // would pass for this one.
    for (const [host, htu] of [
      ['api.example.com#', 'http://api.example.com/'],
      ['api.example.com?', 'http://api.example.com/'],
      ['api.example.com/other', 'http://api.example.com/other/me'],
      ['api.example.com\\other', 'http://api.example.com/other/me'],
      ['user@api.example.com', 'http://api.example.com/me'],
      [undefined, 'http://me/']
    ] as const) {
      t.equal(await send(host, htu), 401, `${name}: Host ${JSON.stringify(host)} and a proof for ${htu}: 401`)
    }
  }
})

t.test('express: a router mounted below a path checks the full path', async (t) => {
  for (const name of ['express 5', 'express 4'] as const) {
    const app = await start(t, name)
    const key = await generateProofKey()
    const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
    t.equal((await app.send('/api/me', dpopHeaders(token, await signProof(key, { htu: `${app.url}/api/me`, accessToken: token })))).status, 200, `${name}: /api/me`)
    t.equal((await app.send('/api/me', dpopHeaders(token, await signProof(key, { htu: `${app.url}/me`, accessToken: token })))).status, 401, `${name}: not /me`)
  }
})

t.test('server nonces: a proof without the current nonce is told use_dpop_nonce and given one', async (t) => {
  for (const name of ADAPTERS) {
    const app = await start(t, name, { dpop: { nonces: createDpopNonces({ lifetimeSeconds: 60 }) } })
    const key = await generateProofKey()
    const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
    const htu = `${app.url}/me`
    const first = await app.send('/me', dpopHeaders(token, await signProof(key, { htu, accessToken: token })))
    t.equal(first.status, 401, `${name}: no nonce: 401`)
    t.match(first.challenge, /^DPoP realm="baton", error="use_dpop_nonce", error_description="[^"]+", algs="/)
    const nonce = first.headers.get('dpop-nonce')
    t.match(nonce, /^[A-Za-z0-9_-]{32}$/, 'a DPoP-Nonce header')
    const retry = await app.send('/me', dpopHeaders(token, await signProof(key, { htu, accessToken: token }, { nonce: nonce! })))
    t.equal(retry.status, 200, 'the retry with it: 200')
    const stale = await app.send('/me', dpopHeaders(token, await signProof(key, { htu, accessToken: token }, { nonce: 'not-a-nonce-of-ours' })))
    t.equal(stale.status, 401, 'a made-up nonce: 401')
  }
})

t.test('the core: authenticate without the request\'s details refuses a DPoP token rather than skipping its proof', async (t) => {
  const { createVerifier } = await import('../src/index.js')
  const verifier = createVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, dpop: true })
  const key = await generateProofKey()
  const token = signToken(ed, claims({ cnf: { jkt: key.jkt } }))
  await t.rejects(async () => await verifier.authenticate(`DPoP ${token}`), { code: 'BATON_DPOP_PROOF_REFUSED', reason: 'dpop_proof', message: 'a DPoP proof is required', scheme: 'DPoP' })
  t.match(await verifier.verify(token), { cnf: { jkt: key.jkt } }, 'verify() checks the token alone (introspection, revocation) and shows its cnf')
  const bearer = signToken(ed, claims())
  await verifier.authenticate(`Bearer ${bearer}`)
  t.notOk(verifier.authenticate(`Bearer ${bearer}`) instanceof Promise, 'a Bearer token seen before is still answered without a promise')
  t.throws(() => createVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, dpop: { algorithms: ['HS256' as 'ES256'] } }), /dpop\.algorithms/)
  t.throws(() => createVerifier({ keys, issuer: ISSUER, audience: AUDIENCE, dpop: { maxAge: 0 } }), /dpop\.maxAge/)
})
