// DPoP proofs as the client signs them, checked by jose (an independent
// implementation): their shape, their key, and what the client does with
// nonce challenges, against a token endpoint and an API on real sockets that
// the test plays, so each challenge comes exactly when the test wants it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, exportJWK, jwtVerify, type JWTPayload } from 'jose'
import { checkDpopProof, createMemoryReplayCache } from '@baton/verifier/dpop'
import { DpopSigner } from '../src/dpop.js'
import { createClient, generateDpopKeyPair, MemoryKeyStore, type DpopKeyStore } from '../src/index.js'
import { FileTokenStore } from '../src/node.js'

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl'

function sha256url (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** What a server checks first: one JWS, typed dpop+jwt, ES256, signed by the public key in its header. */
async function verifyProof (proof: string): Promise<{ payload: JWTPayload, jkt: string, jwk: Record<string, unknown> }> {
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] })
  const jwk = protectedHeader.jwk as Record<string, unknown>
  return { payload, jwk, jkt: await calculateJwkThumbprint(protectedHeader.jwk!) }
}

t.test('a proof is an ES256 dpop+jwt with the public key only, for one request', async (t) => {
  const pair = await generateDpopKeyPair()
  t.equal(pair.privateKey.extractable, false, 'the private key cannot be read out')
  await t.rejects(crypto.subtle.exportKey('jwk', pair.privateKey), 'not even by the page that made it')
  const signer = new DpopSigner(pair)
  const issuedAt = Math.floor(Date.now() / 1000)

  const proof = await signer.proof({ method: 'get', url: 'https://api.example.com/reports/q1?year=2026#top', accessToken: TOKEN, nonce: 'n-1', issuedAt })
  const { payload, jwk, jkt } = await verifyProof(proof)
  t.same(Object.keys(decodeProtectedHeader(proof)).sort(), ['alg', 'jwk', 'typ'], 'the header has typ, alg and jwk, nothing else')
  t.same(Object.keys(jwk).sort(), ['crv', 'kty', 'x', 'y'], 'the jwk is public: no d')
  t.equal(jkt, await calculateJwkThumbprint(await exportJWK(pair.publicKey)), 'the header carries the pair\'s own public key')
  t.same(Object.keys(payload).sort(), ['ath', 'htm', 'htu', 'iat', 'jti', 'nonce'])
  t.equal(payload.htm, 'GET', 'htm is the method, upper case')
  t.equal(payload.htu, 'https://api.example.com/reports/q1', 'htu has no query and no fragment')
  t.equal(payload.iat, issuedAt)
  t.equal(payload.ath, sha256url(TOKEN), 'ath is the SHA-256 of the access token, base64url')
  t.equal(payload.nonce, 'n-1')
  t.match(payload.jti, /^[\w-]{22}$/, 'jti: 128 random bits')

  const second = await verifyProof(await signer.proof({ method: 'POST', url: 'https://auth.example.com/oauth/token', issuedAt }))
  t.not(second.payload.jti, payload.jti, 'every proof has a jti of its own')
  t.notOk('ath' in second.payload || 'nonce' in second.payload, 'a token-endpoint proof without a nonce has no ath and no nonce')
  t.equal(second.jkt, jkt, 'and the same key')
})

t.test('Baton\'s own proof check (the token endpoint\'s and the verifiers\') accepts the client\'s proofs, each once', async (t) => {
  const pair = await generateDpopKeyPair()
  const signer = new DpopSigner(pair)
  const replay = createMemoryReplayCache()
  const url = 'https://api.example.com/me?x=1'
  const proof = await signer.proof({ method: 'GET', url, accessToken: TOKEN, nonce: 'n-2', issuedAt: Math.floor(Date.now() / 1000) })
  const checked = await checkDpopProof(proof, { method: 'GET', url, accessToken: TOKEN, nonce: 'n-2', replay, algorithms: ['ES256'] })
  t.equal(checked.jkt, await calculateJwkThumbprint(await exportJWK(pair.publicKey)), 'the key is the pair\'s: what cnf.jkt will name')
  await t.rejects(checkDpopProof(proof, { method: 'GET', url, accessToken: TOKEN, nonce: 'n-2', replay }), { code: 'invalid_dpop_proof', reason: 'replay' }, 'a second time: a replay')
  const tokenProof = await signer.proof({ method: 'POST', url: 'https://auth.example.com/oauth/token', issuedAt: Math.floor(Date.now() / 1000) })
  t.equal((await checkDpopProof(tokenProof, { method: 'POST', url: 'https://auth.example.com/oauth/token', replay })).jkt, checked.jkt, 'a token-endpoint proof, the same key')
})

t.test('FileTokenStore keeps the DPoP key beside the refresh token, in its 0600 file, for the next run', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'baton-dpop-'))
  t.teardown(async () => { await rm(directory, { recursive: true, force: true }) })
  const path = join(directory, 'session.json')
  const first = await new FileTokenStore(path).dpopKeyPair('baton:https://auth.example.com/:cli')
  const again = await new FileTokenStore(path).dpopKeyPair('baton:https://auth.example.com/:cli')
  const other = await new FileTokenStore(path).dpopKeyPair('baton:https://auth.example.com/:another')
  const thumbprint = async (pair: CryptoKeyPair): Promise<string> => await calculateJwkThumbprint(await exportJWK(pair.publicKey))
  t.equal(await thumbprint(again), await thumbprint(first), 'another run reads back the same key')
  t.not(await thumbprint(other), await thumbprint(first), 'one key per issuer and client')
  t.equal(again.privateKey.extractable, false, 'read back non-extractable')
  t.equal((await stat(path)).mode & 0o777, 0o600, 'the file is its owner\'s only')
  const contents = JSON.parse(await readFile(path, 'utf8')) as { dpop_keys: Record<string, { d?: string }> }
  t.same(Object.keys(contents.dpop_keys).length, 2)
})

// Shared by the played servers, so a token endpoint's tokens are good at an API: token → thumbprint of its key.
const bound = new Map<string, string>()
let tokens = 0

interface Played {
  url: string
  /** Every request, with the proof's claims as jose read them. */
  seen: Array<{ path: string, authorization: string | undefined, proof: JWTPayload | undefined, jkt: string | undefined, status: number }>
  /** The nonce the server wants from now on; undefined: none. */
  nonce: string | undefined
}

/**
 * A server that checks DPoP as RFC 9449 says, with jose: `POST
 * /oauth/token` (password and refresh grants; answers the first `failRefreshes`
 * refreshes by closing the connection after rotating) and `GET /me`. With
 * `moveNonce`, every challenge moves the nonce on.
 */
async function playServer (t: Test, options: { failRefreshes?: number, moveNonce?: boolean } = {}): Promise<Played> {
  const played: Played = { url: '', seen: [], nonce: undefined }
  const jtis = new Set<string>()
  let failRefreshes = options.failRefreshes ?? 0
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    let body = ''
    for await (const chunk of request) body += String(chunk)
    const url = new URL(request.url!, played.url)
    const send = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
      played.seen.at(-1)!.status = status
      response.writeHead(status, { 'content-type': 'application/json', ...headers })
      response.end(JSON.stringify(value))
    }
    const entry: Played['seen'][number] = { path: url.pathname, authorization: request.headers.authorization, proof: undefined, jkt: undefined, status: 0 }
    played.seen.push(entry)
    const header = request.headers.dpop
    if (typeof header !== 'string') return send(400, { error: 'invalid_dpop_proof', error_description: 'no proof' })
    const { payload, jkt } = await verifyProof(header)
    Object.assign(entry, { proof: payload, jkt })
    if (jtis.has(payload.jti!)) return send(400, { error: 'invalid_dpop_proof', error_description: 'replayed' })
    jtis.add(payload.jti!)
    if (payload.htm !== request.method || payload.htu !== `${played.url}${url.pathname}`) return send(400, { error: 'invalid_dpop_proof', error_description: 'htm/htu' })
    const api = url.pathname === '/me'
    if (played.nonce !== undefined && payload.nonce !== played.nonce) {
      const nonce = played.nonce
      if (options.moveNonce === true) played.nonce = `${nonce}+`
      return api
        ? send(401, { error: 'use_dpop_nonce' }, { 'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="a nonce is required"', 'dpop-nonce': nonce })
        : send(400, { error: 'use_dpop_nonce' }, { 'dpop-nonce': nonce })
    }
    if (api) {
      const token = /^DPoP (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
      if (token === undefined || bound.get(token) !== jkt || payload.ath !== sha256url(token)) return send(401, { error: 'invalid_token' }, { 'www-authenticate': 'DPoP error="invalid_token"' })
      return send(200, { ok: true })
    }
    const form = new URLSearchParams(body)
    const grant = form.get('grant_type')
    if (grant === 'refresh_token' && bound.get(form.get('refresh_token')!) !== jkt) return send(400, { error: 'invalid_grant' })
    const accessToken = `at-${++tokens}`
    const refreshToken = `rt-${tokens}`
    bound.set(accessToken, jkt).set(refreshToken, jkt)
    if (grant === 'refresh_token' && failRefreshes-- > 0) {
      response.destroy()
      return
    }
    send(200, { access_token: accessToken, token_type: 'DPoP', expires_in: 900, refresh_token: refreshToken })
  }
  const server = createServer((request, response) => { handle(request, response).catch((error: unknown) => { response.destroy(error as Error) }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  played.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return played
}

t.test('login, API call and refresh carry proofs of one key; token_type DPoP is sent as Authorization: DPoP', async (t) => {
  const auth = await playServer(t)
  const api = await playServer(t)
  const keyStore = new MemoryKeyStore()
  const client = createClient({ issuer: auth.url, apiOrigins: [api.url], dpop: { keyStore } })
  await client.login('ada', 'correct horse battery staple')
  t.equal(client.tokenType, 'DPoP')
  const first = await client.accessToken()
  t.equal(auth.seen[0]?.status, 200, 'the token endpoint took the login proof')
  t.equal(auth.seen[0]?.proof?.htu, `${auth.url}/oauth/token`)

  t.equal((await client.fetch(`${api.url}/me?fields=all`)).status, 200, 'the API took the token and its proof')
  t.match(api.seen[0], { authorization: `DPoP ${first}`, proof: { htm: 'GET', htu: `${api.url}/me`, ath: sha256url(first) } })
  const headers = await client.authorizationHeaders('GET', `${api.url}/me`)
  t.equal(headers.authorization, `DPoP ${first}`, 'authorizationHeaders: the same scheme')
  t.equal((await verifyProof(headers.dpop!)).payload.ath, sha256url(first), 'and a proof of its own')

  const jkt = auth.seen[0]!.jkt
  t.same([...new Set([...auth.seen, ...api.seen].map((entry) => entry.jkt))], [jkt], 'every proof, to both servers, from the one key')
  t.equal(jkt, await calculateJwkThumbprint(await exportJWK((await keyStore.dpopKeyPair(`baton:${auth.url}/:baton`)).publicKey)), 'the key the key store keeps, under the issuer and client')
  t.same(await client.dpopKey(), { thumbprint: jkt, extractable: false }, 'dpopKey(): its thumbprint, and that it cannot be read out')
  t.equal(await createClient({ issuer: auth.url }).dpopKey(), undefined, 'no dpop, no key')
})

t.test('nonce challenges: the token endpoint\'s 400 use_dpop_nonce and the API\'s 401 are each answered once, with the nonce, per origin', async (t) => {
  const auth = await playServer(t)
  const api = await playServer(t)
  auth.nonce = 'auth-nonce-1'
  api.nonce = 'api-nonce-1'
  const client = createClient({ issuer: auth.url, apiOrigins: [api.url], dpop: true })
  await client.login('ada', 'correct horse battery staple')
  t.same(auth.seen.map((entry) => [entry.status, entry.proof?.nonce]), [[400, undefined], [200, 'auth-nonce-1']], 'the login is sent again with the nonce the 400 gave')

  t.equal((await client.fetch(`${api.url}/me`)).status, 200)
  t.same(api.seen.map((entry) => [entry.status, entry.proof?.nonce]), [[401, undefined], [200, 'api-nonce-1']], 'the API call too, with the API\'s own nonce')
  t.not(api.seen[0]!.proof!.jti, api.seen[1]!.proof!.jti, 'a fresh proof, not the refused one again')

  t.equal((await client.fetch(`${api.url}/me`)).status, 200)
  t.equal(api.seen.at(-1)?.proof?.nonce, 'api-nonce-1', 'the nonce is remembered: the next call carries it at once')
  t.equal(api.seen.length, 3, 'and needs no challenge')

  api.nonce = 'api-nonce-2'
  api.seen.length = 0
  t.equal((await client.fetch(`${api.url}/me`)).status, 200, 'a nonce the API has moved on from: one more challenge, answered')
  t.same(api.seen.map((entry) => [entry.status, entry.proof?.nonce]), [[401, 'api-nonce-1'], [200, 'api-nonce-2']])

  const stubborn = await playServer(t, { moveNonce: true })
  stubborn.nonce = 'moving'
  await t.rejects(createClient({ issuer: stubborn.url, dpop: true }).login('ada', 'x'), { code: 'use_dpop_nonce', status: 400 }, 'a second challenge in a row is the caller\'s to see: no loop')
  t.equal(stubborn.seen.length, 2, 'two requests, no more')
})

t.test('a refresh whose answer is lost is retried with a fresh proof of the same key', async (t) => {
  const auth = await playServer(t, { failRefreshes: 1 })
  let now = Date.now()
  const client = createClient({ issuer: auth.url, dpop: true, now: () => now, refreshSkewMs: 30_000 })
  await client.login('ada', 'correct horse battery staple')
  now += 900_000
  const refreshed = await client.accessToken()
  const refreshes = auth.seen.slice(1)
  t.equal(refreshed, `at-${tokens}`, 'the retry was answered (the lost answer had the one before)')
  t.equal(refreshes.length, 2, 'sent twice')
  t.not(refreshes[0]!.proof!.jti, refreshes[1]!.proof!.jti, 'each with its own proof: a server remembers the jti of the first')
  t.equal(refreshes[0]!.jkt, refreshes[1]!.jkt, 'from the same key')
})

t.test('dpop options: a key store of your own; and a store that is not one is refused', async (t) => {
  const pair = await generateDpopKeyPair()
  const asked: string[] = []
  const keyStore: DpopKeyStore = { dpopKeyPair: async (name) => { asked.push(name); return pair } }
  const auth = await playServer(t)
  const client = createClient({ issuer: auth.url, clientId: 'cli', dpop: { keyStore } })
  await client.login('ada', 'x')
  t.same(asked, [`baton:${auth.url}/:cli`], 'asked once, under the issuer and client')
  t.equal(auth.seen[0]!.jkt, await calculateJwkThumbprint(await exportJWK(pair.publicKey)))
  t.throws(() => createClient({ issuer: auth.url, dpop: { keyStore: {} as DpopKeyStore } }), { code: 'invalid_options' })
  let broken = true
  const flaky = createClient({ issuer: auth.url, dpop: { keyStore: { dpopKeyPair: async () => { if (broken) throw new Error('blocked'); return pair } } } })
  const before = auth.seen.length
  await t.rejects(flaky.login('ada', 'x'), { code: 'dpop_key_unavailable' }, 'a key store that fails: dpop_key_unavailable')
  t.equal(auth.seen.length, before, 'and nothing was sent')
  broken = false
  await flaky.login('ada', 'x')
  t.equal(flaky.tokenType, 'DPoP', 'the store is asked again next time')
  t.throws(() => createClient({ issuer: auth.url, dpop: 'yes' as unknown as boolean }), { code: 'invalid_options' })
})
