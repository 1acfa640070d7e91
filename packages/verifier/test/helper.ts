// Shared by the verifier's tests and the resource-service's: real keys, a
// real JWKS server on a real socket, and tokens signed the way Baton signs them.
import { createHash, createHmac, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto'
import { connect, type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { createSigner } from 'fast-jwt'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { testClock as baseTestClock, type TestClock } from '@baton/test-redis'

export type TestAlgorithm = 'EdDSA' | 'ES256'

export interface TestKey {
  kid: string
  alg: TestAlgorithm
  privateKey: KeyObject
  publicKey: KeyObject
  privatePem: string
  publicPem: string
  /** The public JWK as the auth-service publishes it. */
  jwk: Record<string, unknown>
}

export function generateTestKey (alg: TestAlgorithm = 'EdDSA', kid = `test-${randomUUID()}`): TestKey {
  const { privateKey, publicKey } = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return {
    kid,
    alg,
    privateKey,
    publicKey,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }
  }
}

export const ISSUER = 'http://127.0.0.1:3001'
export const AUDIENCE = 'baton-api'

/** A claim set the auth-service could have issued at `nowMs`, valid for 15 minutes. */
export function claims (overrides: Record<string, unknown> = {}, nowMs = Date.now()): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000)
  return {
    iss: ISSUER,
    sub: 'user-1',
    aud: AUDIENCE,
    exp: iat + 900,
    iat,
    jti: randomUUID(),
    client_id: 'baton',
    scope: 'profile',
    sid: 'session-1',
    username: 'alice',
    ...overrides
  }
}

/** Signs with fast-jwt's signer, as the auth-service does: `typ: at+jwt` and the key's kid. A claim set without iat gets one. */
export function signToken (key: TestKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const signer = createSigner({
    key: key.privatePem,
    algorithm: key.alg,
    // No noTimestamp: with it fast-jwt drops the payload's own iat.
    header: { alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header }
  })
  return signer(payload)
}

/** A client's DPoP key pair (RFC 9449), as a browser or Node client would hold it. */
export interface ProofKey {
  alg: string
  privateKey: CryptoKey
  /** The public JWK that goes in each proof's header. */
  jwk: JWK
  /** Its RFC 7638 thumbprint: what a bound token's `cnf.jkt` names. */
  jkt: string
}

export async function generateProofKey (alg = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = await exportJWK(publicKey)
  return { alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) }
}

let proofs = 0
/**
 * A DPoP proof signed by `key` for `htm` and `htu`, issued now (`nowMs`),
 * with `ath` for `accessToken` when given; `claims` and `header` override
 * anything, for forgeries.
 */
export async function signProof (key: ProofKey, request: { htm?: string, htu: string, accessToken?: string, nowMs?: number }, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const payload: JWTPayload = {
    jti: `proof-${++proofs}-${randomUUID()}`,
    htm: request.htm ?? 'GET',
    htu: request.htu,
    iat: Math.floor((request.nowMs ?? Date.now()) / 1000),
    ...(request.accessToken === undefined ? {} : { ath: createHash('sha256').update(request.accessToken).digest('base64url') }),
    ...claims
  }
  return await new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...header }).sign(key.privateKey)
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/**
 * A JWS assembled by hand, for headers no honest signer writes (`alg: none`,
 * no typ, HS256 keyed with a public key). `signWith` returns the signature of
 * the signing input, or '' for none.
 */
export function craftToken (header: Record<string, unknown>, payload: Record<string, unknown>, signWith: (input: string) => string): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${signWith(input)}`
}

/** Signs a signing input with a test key (EdDSA, or ES256 in JWS's r||s form). */
export function signInput (key: TestKey, input: string): string {
  return key.alg === 'EdDSA'
    ? sign(null, Buffer.from(input), key.privateKey).toString('base64url')
    : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
}

/** HMAC-SHA256 keyed with a string, the classic "alg confusion" forgery when the string is a public key. */
export function hmacInput (secret: string, input: string): string {
  return createHmac('sha256', secret).update(input).digest('base64url')
}

export interface JwksServer {
  url: string
  port: number
  /** Keys published; change it to rotate. */
  keys: TestKey[]
  /** Requests the key-set route has received. */
  hits: () => number
  /** Replaces the response (status, body) for later requests; undefined restores the key set. */
  respondWith: (response: { status: number, body: unknown } | undefined) => void
  app: FastifyInstance
  close: () => Promise<void>
}

export interface JwksServerOptions {
  /** Reopens the port a closed server used. */
  port?: number
  /** Extra routes, e.g. a slow or redirecting one; added before the server listens. */
  routes?: (app: FastifyInstance) => void
}

/** A real HTTP server publishing `keys` at /.well-known/jwks.json. */
export async function startJwksServer (keys: TestKey[], options: JwksServerOptions = {}): Promise<JwksServer> {
  let hits = 0
  let override: { status: number, body: unknown } | undefined
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const server: JwksServer = {
    url: '',
    port: 0,
    keys,
    hits: () => hits,
    respondWith: (response) => { override = response },
    app,
    close: async () => { await app.close() }
  }
  app.get('/.well-known/jwks.json', async (_request, reply) => {
    hits += 1
    if (override !== undefined) return reply.code(override.status).send(override.body)
    return { keys: server.keys.map((key) => key.jwk) }
  })
  options.routes?.(app)
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  server.port = (app.server.address() as AddressInfo).port
  server.url = `http://127.0.0.1:${server.port}/.well-known/jwks.json`
  return server
}

/** A clock the test moves by hand. */
export type { TestClock }

/** Starts on a whole second, as NumericDate claims do, so "exactly at exp" is reachable. */
export function testClock (start = Math.floor(Date.now() / 1000) * 1000): TestClock {
  return baseTestClock(start)
}

/** Polls until `condition` holds; fails after `timeoutMs`. */
export async function waitFor (condition: () => Promise<boolean> | boolean, timeoutMs = 5000, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, stepMs))
  }
}

/** Writes raw bytes to the server and returns what it answers before closing (or `waitMs` passing). */
export async function rawRequest (port: number, bytes: string | Buffer, waitMs = 3000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    const done = (): void => { clearTimeout(timer); socket.destroy(); resolve(answer) }
    const timer = setTimeout(done, waitMs)
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1')
      // One full response is enough: a server that keeps the connection open is not what we test.
      if (/\r\n\r\n/.test(answer) && /content-length: (\d+)/i.test(answer)) {
        const length = Number(/content-length: (\d+)/i.exec(answer)![1])
        if (answer.length - answer.indexOf('\r\n\r\n') - 4 >= length) done()
      }
    })
    socket.on('end', done)
    socket.on('error', (error) => { clearTimeout(timer); reject(error) })
    socket.write(bytes)
  })
}

/** The status code of a raw HTTP/1.1 answer, 0 if there was none. */
export const statusOf = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)

/**
 * Authorization values a client may get wrong, with the RFC 6750 answer each
 * must get: [value, status, error code or undefined for a bare challenge].
 */
export function oddAuthorizationHeaders (token: string): Array<[string, number, string | undefined]> {
  return [
    ['', 401, undefined],
    ['Bearer', 400, 'invalid_request'],
    ['Bearer    ', 400, 'invalid_request'],
    [`Bearer ${token} ${token}`, 400, 'invalid_request'],
    [`Bearer\t${token}`, 400, 'invalid_request'],
    [`Basic ${Buffer.from('a:b').toString('base64')}`, 401, undefined],
    [`Digest ${token}`, 401, undefined],
    [token, 401, undefined],
    [`Bearer ${token.slice(0, -1)}é`, 400, 'invalid_request'],
    [`Bearer "${token}"`, 400, 'invalid_request'],
    [`Bearer ${'a'.repeat(15_000)}`, 401, 'invalid_token'],
    [`bearer ${token}`, 200, undefined],
    [`BEARER ${token}`, 200, undefined]
  ]
}

/**
 * `count` random Authorization values, three in four of them past the scheme so
 * the token parser sees them: "Bearer " and random bytes, three random base64url
 * segments, or a real header segment with a random payload and signature. CR
 * and LF are left out: they would end the header rather than fill it.
 */
export function randomAuthorizationValues (headerSegment: string, count: number): Buffer[] {
  const bytes = (i: number): Buffer => Buffer.from([...randomBytes(1 + (i * 7) % 300)].filter((byte) => byte !== 0x0d && byte !== 0x0a))
  const segment = (i: number): string => randomBytes(1 + (i * 7) % 200).toString('base64url')
  return Array.from({ length: count }, (_, i) => {
    switch (i % 4) {
      case 0: return bytes(i)
      case 1: return Buffer.concat([Buffer.from('Bearer '), bytes(i)])
      case 2: return Buffer.from(`Bearer ${segment(i)}.${segment(i + 1)}.${segment(i + 2)}`)
      default: return Buffer.from(`Bearer ${headerSegment}.${segment(i)}.${segment(i + 1)}`)
    }
  })
}

/** What a client sees of an answer to a protected request. */
export interface BearerAnswer {
  status: number
  /** The body's `error`, if any. */
  error: string | undefined
  challenge: string | undefined
}

/** Sends every `oddAuthorizationHeaders` value through `send` and asserts its RFC 6750 answer: one assertion per value. */
export async function assertOddAuthorizationHeadersWith (t: Test, send: (authorization: string) => Promise<BearerAnswer>, token: string, realm = 'baton'): Promise<void> {
  for (const [value, status, error] of oddAuthorizationHeaders(token)) {
    const answer = await send(value)
    t.match(answer, {
      status,
      ...(status === 401 ? { challenge: new RegExp(`^Bearer realm="${realm}"`) } : {}),
      ...(error !== undefined ? { error: new RegExp(`^${error}$`) } : {})
    }, JSON.stringify(value.slice(0, 30)))
  }
}

/** Sends every `oddAuthorizationHeaders` value to `url` and asserts its RFC 6750 answer. */
export async function assertOddAuthorizationHeaders (t: Test, app: FastifyInstance, url: string, token: string): Promise<void> {
  await assertOddAuthorizationHeadersWith(t, async (authorization) => {
    const response = await app.inject({ url, headers: { authorization } })
    return { status: response.statusCode, error: response.json<{ error?: string }>().error, challenge: response.headers['www-authenticate'] as string | undefined }
  }, token)
}
