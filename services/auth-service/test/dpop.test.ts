// DPoP (RFC 9449) at the token endpoint, attack by attack: real keys (jose),
// real Redis, the service's own clock. Each test states what the client sees
// and what must not have happened.
import t from 'tap'
import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose'
import { loadConfig } from '../src/app.js'
import { decodeJwt, keysWithTtl, register, setup, type TestContext, type Tokens } from './helper.js'

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
const GATEWAY_SECRET = 'gateway-secret-0123456789abcdef'
const SERVICE_SECRET = 'service-secret-0123456789abcdef'
const CLIENTS = JSON.stringify([
  { client_id: 'baton', grant_types: ['password', 'refresh_token'] },
  { client_id: 'strict', grant_types: ['password', 'refresh_token'], dpop_bound_access_tokens: true },
  { client_id: 'service', client_secret: SERVICE_SECRET, grant_types: ['client_credentials'], scope: 'reports:read', dpop_bound_access_tokens: true },
  { client_id: 'gateway', client_secret: GATEWAY_SECRET, grant_types: [], introspection: true }
])

interface ProofClaims {
  htm?: string
  htu?: string
  /** Seconds since the epoch; default: the app's now. */
  iat?: number
  jti?: string
  nonce?: string
  /** RFC 9449 §4.2: the access token's hash, on a proof sent with it. */
  ath?: string
}

/** A client's DPoP key pair and the proofs it signs, as RFC 9449 §4 says. */
interface DpopKey {
  jwk: JWK
  jkt: string
  proof: (context: TestContext, claims?: ProofClaims) => Promise<string>
}

async function dpopKey (alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = await exportJWK(publicKey)
  return {
    jwk,
    jkt: await calculateJwkThumbprint(jwk, 'sha256'),
    proof: async (context, claims = {}) => await signProof(privateKey, { alg, typ: 'dpop+jwt', jwk }, {
      htm: 'POST',
      htu: `${context.app.config.ISSUER}/oauth/token`,
      iat: Math.floor(context.clock.now() / 1000),
      jti: randomUUID(),
      ...claims
    })
  }
}

async function signProof (key: CryptoKey, header: { alg: string, typ: string, jwk?: JWK }, claims: Record<string, unknown>): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader(header).sign(key)
}

interface TokenCall {
  dpop?: string
  /** Body fields beside the grant's own. */
  extra?: Record<string, string>
  remoteAddress?: string
  headers?: Record<string, string>
}

async function token (app: FastifyInstance, payload: Record<string, string>, { dpop, remoteAddress = '127.0.0.1', headers = {} }: TokenCall = {}): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: '/oauth/token',
    remoteAddress,
    headers: { 'user-agent': BROWSER, ...(dpop === undefined ? {} : { dpop }), ...headers },
    payload
  })
}

async function dpopLogin (context: TestContext, key: DpopKey, clientId = 'baton'): Promise<Tokens & { username: string }> {
  const user = await register(context.app)
  const response = await token(context.app, { grant_type: 'password', username: user.username, password: user.password, client_id: clientId }, { dpop: await key.proof(context) })
  if (response.statusCode !== 200) throw new Error(`DPoP login failed: ${response.statusCode} ${response.body}`)
  return { ...response.json<Tokens>(), username: user.username }
}

async function dpopRefresh (context: TestContext, refreshToken: string, key: DpopKey | undefined, call: TokenCall = {}): Promise<LightMyRequestResponse> {
  return await token(context.app, { grant_type: 'refresh_token', refresh_token: refreshToken, ...call.extra }, { ...call, ...(key === undefined ? {} : { dpop: await key.proof(context) }) })
}

type Line = Record<string, unknown>
const events = (context: TestContext, name: string): Line[] =>
  context.logs().split('\n').filter((line) => line.includes(`"event":"${name}"`)).map((line) => JSON.parse(line) as Line)

/** The access token as any verifier sees it: signature, issuer, audience and typ checked by jose against the JWKS. */
async function verified (app: FastifyInstance, accessToken: string): Promise<Record<string, unknown>> {
  const jwks = (await app.inject('/.well-known/jwks.json')).json<JSONWebKeySet>()
  const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
    issuer: app.config.ISSUER, audience: app.config.AUDIENCE, typ: 'at+jwt', currentDate: new Date(Date.now())
  })
  return payload
}

async function introspect (app: FastifyInstance, value: string): Promise<Record<string, unknown>> {
  const basic = Buffer.from(`gateway:${GATEWAY_SECRET}`).toString('base64')
  return (await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: `Basic ${basic}` }, payload: { token: value } })).json()
}

t.test('a proof binds the tokens: token_type DPoP, cnf.jkt the key\'s RFC 7638 thumbprint, and the refresh needs the same key', async (t) => {
  const context = await setup(t, { CLIENTS })
  const { app } = context
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const key = await dpopKey(alg)
    const tokens = await dpopLogin(context, key)
    t.equal(tokens.token_type, 'DPoP', `${alg}: the password grant issues a DPoP token`)
    const claims = await verified(app, tokens.access_token)
    t.same(claims.cnf, { jkt: key.jkt }, `${alg}: jose verifies the token, and cnf.jkt is the thumbprint of the client's key`)

    const refreshed = await dpopRefresh(context, tokens.refresh_token, key)
    t.equal(refreshed.statusCode, 200, `${alg}: a refresh with a proof of the same key`)
    const next = refreshed.json<Tokens>()
    t.equal(next.token_type, 'DPoP')
    t.same((await verified(app, next.access_token)).cnf, { jkt: key.jkt }, 'the new access token is bound to the same key')
    t.equal(decodeJwt(next.access_token).payload.sid, claims.sid, 'and speaks for the same session')
  }

  const plain = await register(app)
  const bearerLogin = await token(app, { grant_type: 'password', username: plain.username, password: plain.password })
  t.equal(bearerLogin.json<Tokens>().token_type, 'Bearer', 'without a proof: a Bearer token')
  t.equal(decodeJwt(bearerLogin.json<Tokens>().access_token).payload.cnf, undefined, 'with no cnf')
})

t.test('a stolen refresh token without the key: refused, the family revoked, refresh.reuse_detected', async (t) => {
  const context = await setup(t, { CLIENTS })
  const owner = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const sid = decodeJwt(tokens.access_token).payload.sid

  const stolen = await dpopRefresh(context, tokens.refresh_token, undefined, { remoteAddress: '10.6.6.6' })
  t.equal(stolen.statusCode, 400)
  t.match(stolen.json(), { error: 'invalid_grant', error_description: /bound to a DPoP key/ })
  t.notOk('access_token' in stolen.json(), 'the thief gets no token')
  t.match(events(context, 'refresh.reuse_detected'), [{ sid, reason: 'missing_dpop_proof', level: 40 }], 'audited at warn, with the reason')
  t.match(events(context, 'session.revoked'), [{ sid, reason: 'refresh_token_reuse' }])
  const after = await dpopRefresh(context, tokens.refresh_token, owner)
  t.match({ status: after.statusCode, body: after.json() }, { status: 400, body: { error: 'invalid_grant' } }, 'the family is gone, for the owner too')
  t.match(await introspect(context.app, tokens.access_token), { active: false }, 'and its access tokens are refused at once')
})

t.test('a stolen refresh token with a proof from another key: theft, the family revoked', async (t) => {
  const context = await setup(t, { CLIENTS })
  const owner = await dpopKey()
  const thief = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const sid = decodeJwt(tokens.access_token).payload.sid

  const stolen = await dpopRefresh(context, tokens.refresh_token, thief)
  t.equal(stolen.statusCode, 400)
  t.match(stolen.json(), { error: 'invalid_grant' })
  t.match(events(context, 'refresh.reuse_detected'), [{ sid, reason: 'other_dpop_key' }])
  t.equal((await dpopRefresh(context, tokens.refresh_token, owner)).statusCode, 400, 'the owner\'s token died with the family')
  t.same(await context.redis.keys(`${context.prefix}user:*:session:*`), [], 'no session is left in Redis')
})

t.test('a replayed proof is refused, by this instance and by another on the same Redis, and spends nothing', async (t) => {
  const context = await setup(t, { CLIENTS })
  const other = await setup(t, { CLIENTS, REDIS_KEY_PREFIX: context.prefix }, { clock: context.clock })
  const owner = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const proof = await owner.proof(context)
  const first = await token(context.app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { dpop: proof })
  t.equal(first.statusCode, 200)
  const next = first.json<Tokens>()

  for (const [name, app] of [['the same instance', context.app], ['another instance', other.app]] as const) {
    const replayed = await token(app, { grant_type: 'refresh_token', refresh_token: next.refresh_token }, { dpop: proof })
    t.equal(replayed.statusCode, 400, name)
    t.match(replayed.json(), { error: 'invalid_dpop_proof', error_description: /used before/ }, `${name}: invalid_dpop_proof`)
  }
  t.same(events(context, 'refresh.reuse_detected'), [], 'a refused proof is no theft of the session: the rotation never ran')
  for (const instance of [context, other]) {
    t.match(events(instance, 'dpop.proof_replayed'), [{ level: 40, client_id: 'baton', grant_type: 'refresh_token' }], 'but a copied proof is audited at warn, by the instance that refused it')
  }
  t.equal((await dpopRefresh(context, next.refresh_token, owner)).statusCode, 200, 'the refresh token was not spent')
})

t.test('a proof for another URL, another method, or the Host the request names: invalid_dpop_proof, nothing spent', async (t) => {
  const context = await setup(t, { CLIENTS })
  const { app } = context
  const owner = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const issuer = app.config.ISSUER
  const wrong: Array<[string, ProofClaims, Record<string, string>?]> = [
    ['the resource server\'s URL', { htu: 'http://127.0.0.1:3002/me' }],
    ['the revocation endpoint', { htu: `${issuer}/oauth/revoke` }],
    ['another host', { htu: 'http://evil.example/oauth/token' }],
    ['the Host header the request claims', { htu: 'http://evil.example/oauth/token' }, { host: 'evil.example' }],
    ['https for an http issuer', { htu: issuer.replace('http:', 'https:') + '/oauth/token' }],
    ['GET', { htm: 'GET' }],
    ['post in lower case', { htm: 'post' }]
  ]
  for (const [name, claims, headers = {}] of wrong) {
    const response = await token(app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { dpop: await owner.proof(context, claims), headers })
    t.equal(response.statusCode, 400, name)
    t.match(response.json(), { error: 'invalid_dpop_proof' }, `${name}: invalid_dpop_proof`)
  }
  const login = await register(app)
  const refused = await token(app, { grant_type: 'password', username: login.username, password: login.password }, { dpop: await owner.proof(context, { htm: 'GET' }) })
  t.match({ status: refused.statusCode, body: refused.json() }, { status: 400, body: { error: 'invalid_dpop_proof' } }, 'the password grant too')
  t.same(events(context, 'login.succeeded').map((line) => line.user), [decodeJwt(tokens.access_token).payload.sub], 'and no session was created for it')
  t.equal((await dpopRefresh(context, tokens.refresh_token, owner)).statusCode, 200, 'the refresh token was never spent')
  const normalized = await token(app, { grant_type: 'refresh_token', refresh_token: 'x' }, { dpop: await owner.proof(context, { htu: `${issuer}/oauth/token?x=1#f` }) })
  t.match(normalized.json(), { error: 'invalid_grant' }, 'query and fragment are not compared (RFC 9449 §4.3): the proof passed, the token did not')
})

t.test('an iat outside the window: refused; inside it, with CLOCK_SKEW, accepted', async (t) => {
  const context = await setup(t, { CLIENTS, DPOP_PROOF_MAX_AGE: '60s', CLOCK_SKEW: '5s' })
  const owner = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const now = Math.floor(context.clock.now() / 1000)
  for (const [name, iat] of [['66 s old', now - 66], ['an hour old', now - 3600], ['6 s ahead', now + 6], ['a day ahead', now + 86_400]] as const) {
    const response = await token(context.app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { dpop: await owner.proof(context, { iat }) })
    t.match({ status: response.statusCode, body: response.json() }, { status: 400, body: { error: 'invalid_dpop_proof', error_description: /window/ } }, name)
  }
  const late = await token(context.app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { dpop: await owner.proof(context, { iat: now - 64 }) })
  t.equal(late.statusCode, 200, '64 s old: within 60 s and the skew')

  // A proof's jti is remembered exactly as long as the proof could pass, and a bound session keeps its TTLs.
  const ttls = [...await keysWithTtl(context.redis, context.prefix)]
  const proofKeys = ttls.filter(([key]) => key.startsWith(`${context.prefix}dpop-proof:`))
  t.equal(proofKeys.length, 2, 'the two accepted proofs are remembered, the refused ones not')
  for (const [key, ttl] of [...proofKeys, ...ttls.filter(([key]) => key.includes(':session'))]) t.ok(ttl > 0, `${key.slice(context.prefix.length)} has a TTL`)
  for (const [, ttl] of proofKeys) t.ok(ttl <= 65_000, `a proof is remembered no longer than its window, 65 s (${ttl} ms)`)
})

t.test('the grace-window ride: a thief replaying the just-spent token gets nothing, from another address or from the owner\'s own', async (t) => {
  const context = await setup(t, { CLIENTS, REFRESH_REUSE_GRACE: '10s' })
  const owner = await dpopKey()
  const thief = await dpopKey()

  // The owner's response is lost; its retry, with its key, gets the same successor.
  const first = await dpopLogin(context, owner)
  const rotated = (await dpopRefresh(context, first.refresh_token, owner)).json<Tokens>()
  const retry = await dpopRefresh(context, first.refresh_token, owner)
  t.equal(retry.statusCode, 200, 'the owner\'s retry with its key')
  t.equal(retry.json<Tokens>().refresh_token, rotated.refresh_token, 'gets the same successor')

  // A thief who copied both tokens and the user agent, from another address, with its own key, or with none.
  for (const [name, key, remoteAddress] of [
    ['another address, its own key', thief, '10.6.6.6'],
    ['another address, no proof', undefined, '10.6.6.6'],
    ['the owner\'s address and user agent, its own key', thief, '127.0.0.1'],
    ['the owner\'s address and user agent, no proof', undefined, '127.0.0.1']
  ] as const) {
    const tokens = await dpopLogin(context, owner)
    const sid = decodeJwt(tokens.access_token).payload.sid
    const successor = (await dpopRefresh(context, tokens.refresh_token, owner)).json<Tokens>()
    const ride = await dpopRefresh(context, tokens.refresh_token, key, { remoteAddress })
    t.equal(ride.statusCode, 400, name)
    t.notOk('refresh_token' in ride.json(), `${name}: no successor`)
    t.ok(events(context, 'refresh.reuse_detected').some((line) => line.sid === sid), `${name}: theft, audited`)
    t.equal((await dpopRefresh(context, successor.refresh_token, owner)).statusCode, 400, `${name}: the family is revoked`)
  }
})

t.test('server nonces: use_dpop_nonce with a DPoP-Nonce header, a fresh nonce accepted, a stale or forged one refused', async (t) => {
  const context = await setup(t, { CLIENTS, DPOP_NONCE: 'required', DPOP_NONCE_LIFETIME: '60s' })
  const { app, clock } = context
  // Nonces live for the period they are made in and the next: start at a period's beginning, so that
  // "61 s later" is the next period however the clock happened to start (1 time in 60 it was two).
  clock.advance(60_000 - clock.now() % 60_000)
  const owner = await dpopKey()
  const user = await register(app)
  const login = { grant_type: 'password', username: user.username, password: user.password }

  const challenge = await token(app, login, { dpop: await owner.proof(context) })
  t.equal(challenge.statusCode, 400)
  t.match(challenge.json(), { error: 'use_dpop_nonce' })
  const nonce = challenge.headers['dpop-nonce']
  t.match(nonce, /^[A-Za-z0-9_-]{20,}$/, 'the answer carries a nonce')
  t.equal(challenge.headers['cache-control'], 'no-store')

  const signedIn = await token(app, login, { dpop: await owner.proof(context, { nonce: nonce as string }) })
  t.equal(signedIn.statusCode, 200, 'the proof with the nonce is accepted')
  t.equal(signedIn.json<Tokens>().token_type, 'DPoP')
  t.ok(signedIn.headers['dpop-nonce'], 'a success carries the nonce for the next proof too')
  const tokens = signedIn.json<Tokens>()

  clock.advance(61_000)
  t.equal((await dpopRefresh(context, tokens.refresh_token, owner)).statusCode, 400, 'no nonce after a refresh')
  const stillFresh = await token(app, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { dpop: await owner.proof(context, { nonce: nonce as string }) })
  t.equal(stillFresh.statusCode, 200, 'a nonce of the previous period is still fresh')
  const next = stillFresh.json<Tokens>()
  clock.advance(120_000)
  const stale = await token(app, { grant_type: 'refresh_token', refresh_token: next.refresh_token }, { dpop: await owner.proof(context, { nonce: nonce as string }) })
  t.match({ status: stale.statusCode, body: stale.json() }, { status: 400, body: { error: 'use_dpop_nonce' } }, 'two periods later it is stale')
  t.not(stale.headers['dpop-nonce'], nonce, 'and a new nonce comes with the refusal')
  const issued = stale.headers['dpop-nonce'] as string
  for (const forged of ['AAAAAAAAAAAAAAAAAAAAAAAAAAA', 'x', issued.slice(0, -1) + (issued.endsWith('A') ? 'B' : 'A'), issued.slice(0, -1)]) {
    const response = await token(app, { grant_type: 'refresh_token', refresh_token: next.refresh_token }, { dpop: await owner.proof(context, { nonce: forged }) })
    t.match(response.json(), { error: 'use_dpop_nonce' }, `a forged nonce ${forged.slice(0, 8)}… is refused`)
  }
  const fresh = await token(app, { grant_type: 'refresh_token', refresh_token: next.refresh_token }, { dpop: await owner.proof(context, { nonce: issued }) })
  t.equal(fresh.statusCode, 200, 'the new nonce works, and the refusals spent nothing')

  const plain = await setup(t, { CLIENTS })
  const noNonces = await token(plain.app, { grant_type: 'password', username: 'nobody', password: 'whatever it is' })
  t.equal(noNonces.headers['dpop-nonce'], undefined, 'with DPOP_NONCE off no nonce is handed out')
})

t.test('a client registered with dpop_bound_access_tokens: no token without a proof, for any grant', async (t) => {
  const context = await setup(t, { CLIENTS })
  const { app } = context
  const user = await register(app)
  const key = await dpopKey()

  const bearerLogin = await token(app, { grant_type: 'password', username: user.username, password: user.password, client_id: 'strict' })
  t.match({ status: bearerLogin.statusCode, body: bearerLogin.json() }, { status: 400, body: { error: 'invalid_dpop_proof', error_description: /must send a DPoP proof/ } }, 'a Bearer login is refused')
  t.same(events(context, 'login.succeeded'), [], 'before any session is created')

  const basic = `Basic ${Buffer.from(`service:${SERVICE_SECRET}`).toString('base64')}`
  const bearerService = await token(app, { grant_type: 'client_credentials' }, { headers: { authorization: basic } })
  t.match({ status: bearerService.statusCode, body: bearerService.json() }, { status: 400, body: { error: 'invalid_dpop_proof' } }, 'client_credentials without a proof is refused')
  const service = await token(app, { grant_type: 'client_credentials' }, { headers: { authorization: basic }, dpop: await key.proof(context) })
  t.equal(service.statusCode, 200, 'client_credentials with a proof')
  t.equal(service.json<Tokens>().token_type, 'DPoP')
  t.same((await verified(app, service.json<Tokens>().access_token)).cnf, { jkt: key.jkt })

  const tokens = await dpopLogin(context, key, 'strict')
  t.equal(tokens.token_type, 'DPoP')
  const bearerRefresh = await dpopRefresh(context, tokens.refresh_token, undefined, { extra: { client_id: 'strict' } })
  t.match({ status: bearerRefresh.statusCode, body: bearerRefresh.json() }, { status: 400, body: { error: 'invalid_grant' } }, 'a refresh without the proof: theft')
  t.match(events(context, 'refresh.reuse_detected'), [{ client_id: 'strict', reason: 'missing_dpop_proof' }])

  // A session from before the client was made to require DPoP is unbound: refused without a proof, not ended.
  const user2 = await register(app)
  const before = (await token(app, { grant_type: 'password', username: user2.username, password: user2.password })).json<Tokens>()
  const strictNow = await setup(t, { CLIENTS: JSON.stringify([{ client_id: 'baton', grant_types: ['password', 'refresh_token'], dpop_bound_access_tokens: true }]), REDIS_KEY_PREFIX: context.prefix }, { clock: context.clock })
  const unproven = await token(strictNow.app, { grant_type: 'refresh_token', refresh_token: before.refresh_token })
  t.match({ status: unproven.statusCode, body: unproven.json() }, { status: 400, body: { error: 'invalid_dpop_proof' } }, 'an unbound session of a client that now requires DPoP: no refresh without a proof')
  const proven = await token(strictNow.app, { grant_type: 'refresh_token', refresh_token: before.refresh_token }, { dpop: await key.proof(context) })
  t.equal(proven.statusCode, 200, 'the refusal spent nothing; with a proof it refreshes')
  t.equal(proven.json<Tokens>().token_type, 'DPoP')
})

t.test('a session that began unbound binds to the first key that refreshes it with a proof, and keeps it', async (t) => {
  const context = await setup(t, { CLIENTS })
  const { app } = context
  const key = await dpopKey()
  const user = await register(app)
  const plain = (await token(app, { grant_type: 'password', username: user.username, password: user.password })).json<Tokens>()
  const bearerRefresh = await dpopRefresh(context, plain.refresh_token, undefined)
  t.equal(bearerRefresh.json<Tokens>().token_type, 'Bearer', 'unbound, a refresh without a proof stays Bearer')
  const upgraded = await dpopRefresh(context, bearerRefresh.json<Tokens>().refresh_token, key)
  t.equal(upgraded.statusCode, 200)
  t.equal(upgraded.json<Tokens>().token_type, 'DPoP', 'the first proof binds the session')
  t.match(await introspect(app, upgraded.json<Tokens>().refresh_token), { active: true, cnf: { jkt: key.jkt } }, 'its refresh token is bound to that key')
  const downgraded = await dpopRefresh(context, upgraded.json<Tokens>().refresh_token, undefined)
  t.match({ status: downgraded.statusCode, body: downgraded.json() }, { status: 400, body: { error: 'invalid_grant' } }, 'after that, a refresh without the key is theft')
})

t.test('introspection shows the binding: token_type DPoP and cnf.jkt, for access and refresh tokens', async (t) => {
  const context = await setup(t, { CLIENTS })
  const key = await dpopKey()
  const tokens = await dpopLogin(context, key)
  t.match(await introspect(context.app, tokens.access_token), { active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } })
  t.match(await introspect(context.app, tokens.refresh_token), { active: true, token_type: 'refresh_token', cnf: { jkt: key.jkt } })
  const user = await register(context.app)
  const plain = (await token(context.app, { grant_type: 'password', username: user.username, password: user.password })).json<Tokens>()
  const unbound = await introspect(context.app, plain.access_token)
  t.match(unbound, { active: true, token_type: 'Bearer' })
  t.notOk('cnf' in unbound, 'a Bearer token has no cnf')
})

t.test('hostile DPoP headers: always 400 invalid_dpop_proof, never a 5xx, nothing created', async (t) => {
  const context = await setup(t, { CLIENTS, DPOP_SIGNING_ALGS: 'ES256 EdDSA' })
  const { app } = context
  const user = await register(app)
  const key = await dpopKey()
  const { privateKey: rsa, publicKey: rsaPublic } = await generateKeyPair('RS256', { extractable: true })
  const { privateKey: es, publicKey: esPublic } = await generateKeyPair('ES256', { extractable: true })
  const esJwk = await exportJWK(esPublic)
  const esPrivateJwk = await exportJWK(es)
  const claims = { htm: 'POST', htu: `${app.config.ISSUER}/oauth/token`, iat: Math.floor(context.clock.now() / 1000) }
  const good = await key.proof(context)
  const [h, p] = good.split('.') as [string, string, string]
  const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const hostile: Array<[string, string]> = [
    ['empty', ''],
    ['one word', 'proof'],
    ['three empty parts', '..'],
    ['not base64url', '!!!.???.###'],
    ['alg none', `${b64({ alg: 'none', typ: 'dpop+jwt', jwk: esJwk })}.${b64({ ...claims, jti: 'a' })}.`],
    ['HS256 keyed with the public JWK', `${b64({ alg: 'HS256', typ: 'dpop+jwt', jwk: esJwk })}.${p}.c2ln`],
    ['typ JWT', await signProof(es, { alg: 'ES256', typ: 'JWT', jwk: esJwk }, { ...claims, jti: randomUUID() })],
    ['no jwk', await signProof(es, { alg: 'ES256', typ: 'dpop+jwt' }, { ...claims, jti: randomUUID() })],
    ['a private jwk', await signProof(es, { alg: 'ES256', typ: 'dpop+jwt', jwk: esPrivateJwk }, { ...claims, jti: randomUUID() })],
    ['RS256, not allowed here', await signProof(rsa, { alg: 'RS256', typ: 'dpop+jwt', jwk: await exportJWK(rsaPublic) }, { ...claims, jti: randomUUID() })],
    ['signed by another key than its jwk', await signProof(es, { alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk }, { ...claims, jti: randomUUID() })],
    ['no jti', await signProof(es, { alg: 'ES256', typ: 'dpop+jwt', jwk: esJwk }, claims)],
    ['a signature cut short', good.slice(0, -4)],
    ['two proofs', `${good}, ${await key.proof(context)}`],
    ['header and payload swapped', `${p}.${h}.${good.split('.')[2]!}`],
    ['10 KB', `${h}.${'A'.repeat(10_000)}.${good.split('.')[2]!}`]
  ]
  for (const [name, dpop] of hostile) {
    const response = await token(app, { grant_type: 'password', username: user.username, password: user.password }, { dpop })
    t.equal(response.statusCode, 400, name)
    t.equal(response.json<{ error: string }>().error, 'invalid_dpop_proof', `${name}: invalid_dpop_proof`)
  }
  t.same(events(context, 'login.succeeded'), [], 'no session was created')
  t.equal(events(context, 'dpop.proof_refused').length, hostile.length, 'each refusal is audited, with its reason')
  t.match(events(context, 'dpop.proof_refused'), [{ reason: 'missing' }, { reason: 'malformed' }])
  t.same([...(await keysWithTtl(context.redis, context.prefix)).keys()].filter((name) => name.includes(':session:')), [], 'nothing in Redis')
})

t.test('discovery and CORS: dpop_signing_alg_values_supported; pages may send DPoP and read DPoP-Nonce', async (t) => {
  const page = 'http://localhost:5173'
  const context = await setup(t, { CLIENTS, CORS_ORIGINS: page, DPOP_SIGNING_ALGS: 'ES256, EdDSA', DPOP_NONCE: 'required' })
  const { app } = context
  const metadata = (await app.inject('/.well-known/oauth-authorization-server')).json<Record<string, unknown>>()
  t.same(metadata.dpop_signing_alg_values_supported, ['ES256', 'EdDSA'])

  const preflight = await app.inject({ method: 'OPTIONS', url: '/oauth/token', headers: { origin: page, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, dpop' } })
  t.equal(preflight.statusCode, 204)
  t.match(preflight.headers['access-control-allow-headers'], /\bdpop\b/i, 'the DPoP header may be sent')
  const answer = await token(app, { grant_type: 'password', username: 'nobody', password: 'whatever it is' }, { headers: { origin: page }, dpop: await (await dpopKey()).proof(context) })
  t.match(answer.json(), { error: 'use_dpop_nonce' })
  t.match(answer.headers['access-control-expose-headers'], /\bdpop-nonce\b/i, 'and the page can read the nonce')
})

t.test('cookie mode: the proof binds the session whose refresh token lives in the cookie; the cookie alone is worth nothing', async (t) => {
  const page = 'http://localhost:5173'
  const context = await setup(t, { CORS_ORIGINS: page, CLIENTS: JSON.stringify([{ client_id: 'baton', grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie' }]) })
  const { app } = context
  const key = await dpopKey()
  const user = await register(app)
  const pageHeaders = { origin: page, 'x-baton-client': '1' }
  const cookieOf = (response: LightMyRequestResponse): string | undefined => response.cookies.find((cookie) => cookie.name === '__Host-baton-refresh-baton')?.value
  const withCookie = (value: string): Record<string, string> => ({ ...pageHeaders, cookie: `__Host-baton-refresh-baton=${value}` })

  const crossSite = await token(app, { grant_type: 'password', username: user.username, password: user.password }, { dpop: await key.proof(context) })
  t.equal(crossSite.statusCode, 403, 'the CSRF check comes first')
  const signedIn = await token(app, { grant_type: 'password', username: user.username, password: user.password }, { headers: pageHeaders, dpop: await key.proof(context) })
  t.equal(signedIn.statusCode, 200)
  t.equal(signedIn.json<Tokens>().token_type, 'DPoP')
  const first = cookieOf(signedIn)!
  const refreshed = await token(app, { grant_type: 'refresh_token' }, { headers: withCookie(first), dpop: await key.proof(context) })
  t.equal(refreshed.statusCode, 200, 'the cookie and a proof of the key refresh')
  t.same((await verified(app, refreshed.json<Tokens>().access_token)).cnf, { jkt: key.jkt })

  const stolen = await token(app, { grant_type: 'refresh_token' }, { headers: withCookie(cookieOf(refreshed)!) })
  t.match({ status: stolen.statusCode, body: stolen.json() }, { status: 400, body: { error: 'invalid_grant' } }, 'the cookie without the key: theft')
  t.equal(cookieOf(stolen), '', 'the cookie is cleared')
  t.match(events(context, 'refresh.reuse_detected'), [{ reason: 'missing_dpop_proof' }])
})

t.test('the auth-service\'s own routes: a DPoP-bound access token needs its key there too; as Bearer, or with another key\'s proof, 401', async (t) => {
  const context = await setup(t, { CLIENTS })
  const { app } = context
  const owner = await dpopKey()
  const thief = await dpopKey()
  const tokens = await dpopLogin(context, owner)
  const url = `${app.config.ISSUER}/sessions`
  const ath = createHash('sha256').update(tokens.access_token).digest('base64url')
  const sessions = async (authorization: string, dpop?: string): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'GET', url: '/sessions', headers: { authorization, ...(dpop === undefined ? {} : { dpop }) } })

  const asBearer = await sessions(`Bearer ${tokens.access_token}`)
  t.equal(asBearer.statusCode, 401, 'a bound token sent as Bearer: no downgrade')
  const proof = await owner.proof(context, { htm: 'GET', htu: url, ath })
  const proven = await sessions(`DPoP ${tokens.access_token}`, proof)
  t.equal(proven.statusCode, 200, 'with the DPoP scheme and a proof of the key')
  t.equal(proven.json<{ sessions: unknown[] }>().sessions.length, 1)
  for (const [name, dpop] of [
    ['a proof from another key', await thief.proof(context, { htm: 'GET', htu: url, ath })],
    ['the same proof again', proof],
    ['a proof without ath', await owner.proof(context, { htm: 'GET', htu: url })],
    ['a proof for the token endpoint', await owner.proof(context, { ath })],
    ['no proof', undefined]
  ] as const) {
    const response = await sessions(`DPoP ${tokens.access_token}`, dpop)
    t.equal(response.statusCode, 401, name)
    t.match(response.headers['www-authenticate'], /^DPoP /, `${name}: a DPoP challenge`)
  }
})

t.test('the DPoP settings are checked at start-up, each bad one named in one line', async (t) => {
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ DPOP_SIGNING_ALGS: 'ES256 HS256' }, /^DPOP_SIGNING_ALGS must list some of ES256, ES384, EdDSA, Ed25519, PS256, RS256, not "HS256"/],
    [{ DPOP_SIGNING_ALGS: 'none' }, /^DPOP_SIGNING_ALGS .*not "none"/],
    [{ DPOP_SIGNING_ALGS: ' , ' }, /^DPOP_SIGNING_ALGS must list some of/],
    [{ DPOP_PROOF_MAX_AGE: '10m' }, /^DPOP_PROOF_MAX_AGE must be a duration from 1s to 300s/],
    [{ DPOP_PROOF_MAX_AGE: '0' }, /^DPOP_PROOF_MAX_AGE/],
    [{ DPOP_NONCE: 'yes' }, /^DPOP_NONCE/],
    [{ DPOP_NONCE_LIFETIME: '1s' }, /^DPOP_NONCE_LIFETIME/],
    [{ CLIENTS: JSON.stringify([{ client_id: 'app', grant_types: ['password'], dpop_bound_access_tokens: 'yes' }]) }, /^CLIENTS\[0\]\.dpop_bound_access_tokens must be true or false/]
  ]
  for (const [env, message] of refused) t.throws(() => loadConfig(env), message, JSON.stringify(env))
  const config = loadConfig({ DPOP_SIGNING_ALGS: 'EdDSA,ES256 ES256', DPOP_NONCE: 'required', DPOP_NONCE_LIFETIME: '2m', DPOP_PROOF_MAX_AGE: '30s' })
  t.same(config.DPOP_SIGNING_ALGS, ['EdDSA', 'ES256'], 'commas or spaces, duplicates once')
  t.match(config, { DPOP_NONCE: 'required', DPOP_NONCE_LIFETIME: 120, DPOP_PROOF_MAX_AGE: 30 })
  t.match(loadConfig({}), { DPOP_NONCE: 'off', DPOP_PROOF_MAX_AGE: 60, DPOP_NONCE_LIFETIME: 300 }, 'the defaults')
})
