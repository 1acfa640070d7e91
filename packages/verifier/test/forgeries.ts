// Hostile access tokens, one table for every place that reads a token: the
// verifier's own tests, the resource-service over real sockets and the
// auth-service's introspection and Bearer endpoints. Where a forgery is
// signed with the verifier's real key, everything but the attack is genuine,
// so only the check under test can refuse it.
import { createHmac, createSign, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { signInput, type TestKey } from './helper.js'

export interface Forgery {
  /** 'forged' (class 1: structure, algorithm, key, encoding) or 'claims' (class 2). */
  kind: 'forged' | 'claims'
  name: string
  token: string
  /** Not even a b64token: in an Authorization header RFC 6750 makes it a malformed request (400 invalid_request), not a bad token. */
  malformedHeader?: true
}

export interface ForgeryInput {
  /** The verifier's real Ed25519 key and its real P-256 key, both published. */
  ed: TestKey
  ec: TestKey
  /** A genuine claim set, valid now. */
  genuine: Record<string, unknown>
  /** A URL no verifier may fetch (jku, x5u). */
  trap: string
}

const b64 = (text: string): string => Buffer.from(text).toString('base64url')
const json = (value: unknown): string => JSON.stringify(value)

/** A JWS over the exact header and payload texts given, signed by `signer` (or with the signature given). */
export function rawToken (header: string, payload: string, signer: (input: string) => string): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${signer(input)}`
}

const attacker = {
  ed: generateKeyPairSync('ed25519'),
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  p384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  p521: generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  k256: generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
}

function signWith (algorithm: string | null, key: KeyObject, dsa = false): (input: string) => string {
  return (input) => (dsa
    ? sign(algorithm, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
    : sign(algorithm, Buffer.from(input), key)).toString('base64url')
}

function rsaPss (key: KeyObject): (input: string) => string {
  return (input) => createSign('sha256').update(input).sign({ key, padding: 6, saltLength: 32 }).toString('base64url')
}

const hmac = (algorithm: string, secret: string | Buffer) => (input: string): string =>
  createHmac(algorithm, secret).update(input).digest('base64url')

/** The P-256 group order: r or s equal to it (or 0) is the CVE-2022-21449 "psychic signature". */
const P256_ORDER = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex')

/** Same bytes, another spelling: sets the unused low bits of the last base64url character. */
export function withTrailingBits (segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const unused = segment.length % 4 === 2 ? 4 : segment.length % 4 === 3 ? 2 : 0
  if (unused === 0) throw new Error('this segment has no unused bits')
  const last = alphabet.indexOf(segment.at(-1)!)
  return segment.slice(0, -1) + alphabet[last | ((1 << unused) - 1)]!
}

/** Audiences RFC 7519 allows and a verifier for `aud` must accept: the string itself, or an array of strings that contains it. */
export function acceptedAudiences (aud: string): unknown[] {
  return [aud, [aud], [aud, 'another-api'], ['another-api', aud], [aud, aud]]
}

export function forgeries ({ ed, ec, genuine, trap }: ForgeryInput): Forgery[] {
  const header = { alg: 'EdDSA', typ: 'at+jwt', kid: ed.kid }
  const real = (input: string): string => signInput(ed, input)
  const signed = (h: Record<string, unknown>, payload: Record<string, unknown> = genuine): string => rawToken(json(h), json(payload), real)
  const withClaims = (changes: Record<string, unknown>): string => signed(header, { ...genuine, ...changes })
  const without = (claim: string): string => signed(header, Object.fromEntries(Object.entries(genuine).filter(([name]) => name !== claim)))
  const now = Math.floor(Date.now() / 1000)
  const list: Forgery[] = []
  const forged = (name: string, token: string): void => { list.push({ kind: 'forged', name, token }) }
  const claim = (name: string, token: string): void => { list.push({ kind: 'claims', name, token }) }
  const unframable = (name: string, token: string): void => { list.push({ kind: 'forged', name, token, malformedHeader: true }) }

  // alg: none, in every spelling, with and without a signature part.
  for (const alg of ['none', 'None', 'NONE', 'nOnE', 'none ', '']) {
    forged(`alg "${alg}", empty signature`, rawToken(json({ ...header, alg }), json(genuine), () => ''))
    forged(`alg "${alg}", some signature`, rawToken(json({ ...header, alg }), json(genuine), () => 'AAAA'))
  }

  // Algorithm confusion: HMAC keyed with the public key, in every encoding a library might hand HMAC.
  const pem = ed.publicPem
  const der = ed.publicKey.export({ type: 'spki', format: 'der' })
  const x = String(ed.jwk.x)
  const secrets: Record<string, string | Buffer> = {
    'SPKI PEM': pem,
    'PEM without its final newline': pem.trimEnd(),
    'PEM with CRLF': pem.replace(/\n/g, '\r\n'),
    'DER bytes': der,
    'DER base64': der.toString('base64'),
    'DER base64url': der.toString('base64url'),
    'the JWK as JSON': json(ed.jwk),
    'the raw key, base64url': x,
    'the raw key bytes': Buffer.from(x, 'base64url'),
    'the kid': ed.kid,
    'the P-256 PEM': ec.publicPem
  }
  for (const [encoding, secret] of Object.entries(secrets)) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      forged(`${alg} keyed with ${encoding}`, rawToken(json({ ...header, alg }), json(genuine), hmac(`sha${alg.slice(2)}`, secret)))
    }
  }

  // Algorithms outside the allow-list, each signed with a real key of its kind.
  const foreign: Array<[string, (input: string) => string]> = [
    ['RS256', signWith('sha256', attacker.rsa.privateKey)],
    ['PS256', rsaPss(attacker.rsa.privateKey)],
    ['ES384', signWith('sha384', attacker.p384.privateKey, true)],
    ['ES512', signWith('sha512', attacker.p521.privateKey, true)],
    ['ES256K', signWith('sha256', attacker.k256.privateKey, true)]
  ]
  for (const [alg, signer] of foreign) {
    forged(`${alg} naming the real kid`, rawToken(json({ ...header, alg }), json(genuine), signer))
    forged(`${alg} naming an unknown kid`, rawToken(json({ ...header, alg, kid: 'attacker' }), json(genuine), signer))
  }
  forged('EdDSA header naming the P-256 key', rawToken(json({ ...header, kid: ec.kid }), json(genuine), real))
  forged('ES256 header naming the Ed25519 key', rawToken(json({ ...header, alg: 'ES256' }), json(genuine), (input) => signInput(ec, input)))
  forged('EdDSA signed by another Ed25519 key', rawToken(json(header), json(genuine), signWith(null, attacker.ed.privateKey)))

  // CVE-2022-21449: ECDSA signatures with r or s zero (or the group order) "verify" in broken implementations.
  const ecHeader = json({ ...header, alg: 'ES256', kid: ec.kid })
  const zero = Buffer.alloc(32)
  const psychic: Record<string, Buffer> = {
    'r = s = 0': Buffer.concat([zero, zero]),
    'r = s = n': Buffer.concat([P256_ORDER, P256_ORDER]),
    'r = 0, s = n': Buffer.concat([zero, P256_ORDER]),
    'r = n, s = 0': Buffer.concat([P256_ORDER, zero]),
    'DER-encoded r = s = 0': Buffer.from('3006020100020100', 'hex'),
    'a single zero byte': Buffer.alloc(1)
  }
  for (const [name, signature] of Object.entries(psychic)) {
    forged(`ES256 psychic signature, ${name}`, rawToken(ecHeader, json(genuine), () => signature.toString('base64url')))
  }

  // Headers that name a key or a place to fetch one: refused, never followed.
  const attackerJwk = { ...attacker.ed.publicKey.export({ format: 'jwk' }), kid: 'attacker' }
  const attackerSigned = signWith(null, attacker.ed.privateKey)
  forged('jwk header with the attacker\'s key', rawToken(json({ ...header, kid: 'attacker', jwk: attackerJwk }), json(genuine), attackerSigned))
  forged('jwk header, real kid, attacker\'s signature', rawToken(json({ ...header, jwk: attackerJwk }), json(genuine), attackerSigned))
  forged('jku header pointing at the attacker', rawToken(json({ ...header, kid: 'attacker', jku: trap }), json(genuine), attackerSigned))
  forged('x5u header pointing at the attacker', rawToken(json({ ...header, kid: 'attacker', x5u: trap }), json(genuine), attackerSigned))
  forged('x5c header with a made-up chain', rawToken(json({ ...header, kid: 'attacker', x5c: [der.toString('base64')] }), json(genuine), attackerSigned))
  for (const parameter of ['jku', 'x5u']) forged(`${parameter} header on a token the real key signed`, signed({ ...header, [parameter]: trap }))
  forged('jwk header on a token the real key signed', signed({ ...header, jwk: ed.jwk }))
  forged('x5c header on a token the real key signed', signed({ ...header, x5c: [der.toString('base64')] }))
  forged('x5t header on a token the real key signed', signed({ ...header, x5t: 'AAAA' }))
  forged('crit ["exp"] on a token the real key signed', signed({ ...header, crit: ['exp'] }))
  forged('crit [] on a token the real key signed', signed({ ...header, crit: [] }))
  forged('an unknown header parameter on a token the real key signed', signed({ ...header, zip: 'DEF' }))

  // Hostile kids, each on an otherwise genuine token signed by the real key.
  const kids: unknown[] = ['../../etc/passwd', '\' OR \'1\'=\'1', '__proto__', 'constructor', 'toString', 'hasOwnProperty',
    'x'.repeat(10_000), `${ed.kid} `, ed.kid.toUpperCase(), '', 123, {}, [ed.kid], null, true]
  for (const kid of kids) forged(`kid ${json(kid).slice(0, 40)}`, signed({ ...header, kid }))

  // Shapes that are not a JWS.
  const genuineToken = signed(header)
  const [h, p, s] = genuineToken.split('.') as [string, string, string]
  forged('one segment', h)
  forged('two segments', `${h}.${p}`)
  forged('four segments', `${genuineToken}.${s}`)
  forged('five segments (JWE-shaped)', `${h}.${p}.${s}.${s}.${s}`)
  forged('an empty payload segment', `${h}..${s}`)
  forged('an empty header segment', `.${p}.${s}`)
  forged('dots only', '..')

  // Non-canonical base64url: other spellings of the genuine token's bytes.
  forged('padding on the signature', `${genuineToken}==`)
  unframable('padding on the payload', `${h}.${p}=.${s}`)
  const standard = genuineToken.replace(/-/g, '+').replace(/_/g, '/')
  forged('base64 "+" and "/" for "-" and "_"', standard !== genuineToken ? standard : `${h}.${p}.+${s.slice(1)}`)
  unframable('whitespace inside', `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`)
  forged('the signature\'s unused bits set (same bytes, another spelling)', `${h}.${p}.${withTrailingBits(s)}`)
  // Signed over the odd spelling itself, so the signature is right for what is presented.
  for (const [part, respelled] of [['payload', `${h}.${p.length % 4 === 0 ? '' : withTrailingBits(p)}`], ['header', `${h.length % 4 === 0 ? '' : withTrailingBits(h)}.${p}`]] as const) {
    if (!respelled.startsWith('.') && !respelled.endsWith('.')) forged(`the ${part}'s unused bits set, signed as presented`, `${respelled}.${real(respelled)}`)
  }

  // Headers and payloads that are not objects, signed by the real key.
  for (const value of ['"at+jwt"', '1', '[]', 'null', 'true']) {
    forged(`header ${value}`, rawToken(value, json(genuine), real))
    forged(`payload ${value}`, rawToken(json(header), value, real))
  }

  // Duplicate member names, signed by the real key: readers disagree on which one wins.
  const body = json(genuine).slice(1, -1)
  forged('payload with sub twice', rawToken(json(header), `{"sub":"someone-else",${body}}`, real))
  forged('payload with aud twice', rawToken(json(header), `{${body},"aud":"another-api"}`, real))
  forged('payload with a name escaped differently', rawToken(json(header), `{${body},"s\\u0075b":"someone-else"}`, real))
  forged('payload with a duplicate inside a nested object', rawToken(json(header), `{${body},"ext":{"a":1,"a":2}}`, real))
  forged('header with alg twice', rawToken(`{"alg":"none","typ":"at+jwt","kid":"${ed.kid}","alg":"EdDSA"}`, json(genuine), real))

  // Oversized.
  forged('a 9 KB token the real key signed', withClaims({ padding: 'x'.repeat(9000) }))
  forged('a 100 KB token', `${h}.${b64('x'.repeat(75_000))}.${s}`)

  // Class 2: the claims, every token signed by the real key with a genuine header.
  claim('exp missing', without('exp'))
  claim('exp a string', withClaims({ exp: String(now + 600) }))
  claim('exp a float', withClaims({ exp: now + 600.5 }))
  claim('exp 1e400 (Infinity)', rawToken(json(header), json({ ...genuine, exp: 0 }).replace('"exp":0', '"exp":1e400'), real))
  claim('exp -1', withClaims({ exp: -1 }))
  claim('exp 2^53', withClaims({ exp: 2 ** 53 }))
  claim('exp null', withClaims({ exp: null }))
  claim('exp true', withClaims({ exp: true }))
  claim('exp in the past', withClaims({ exp: now - 3600, iat: now - 4000 }))
  claim('iat missing', without('iat'))
  claim('iat in the future', withClaims({ iat: now + 3600, exp: now + 4000 }))
  claim('iat a string', withClaims({ iat: String(now) }))
  claim('nbf in the future', withClaims({ nbf: now + 3600 }))
  claim('nbf a float', withClaims({ nbf: now - 0.5 }))
  const iss = String(genuine.iss)
  const issuers: unknown[] = [iss.toUpperCase(), `${iss}/`, `${iss} `, ` ${iss}`, iss.replace('1', 'l'), iss.replace('.', '\u2024'),
    `${iss}.evil.example`, iss.slice(0, -1), [iss], null, '']
  for (const value of issuers) claim(`iss ${json(value)}`, withClaims({ iss: value }))
  claim('iss missing', without('iss'))
  const aud = String(genuine.aud)
  const audiences: unknown[] = [aud.toUpperCase(), `${aud} `, `${aud}x`, aud.slice(1), ['another-api'], ['another-api', `${aud}x`], [aud.toUpperCase()],
    [], [aud, 42], [42], [null], [[aud]], [aud, null], [{ aud }], null, '', 42, { aud }]
  for (const value of audiences) claim(`aud ${json(value)}`, withClaims({ aud: value }))
  claim('aud missing', without('aud'))
  for (const typ of ['JWT', 'jwt', 'at+jwt ', 'application/jwt', 'at+jwt; charset=utf-8', '']) {
    claim(`typ ${json(typ)} (another kind of JWT from the same key)`, signed({ ...header, typ }))
  }
  claim('typ missing', signed({ alg: 'EdDSA', kid: ed.kid }))
  claim('typ an array', signed({ ...header, typ: ['at+jwt'] }))
  claim('an ID-token-like JWT from the same key', signed({ ...header, typ: 'JWT' }, { ...genuine, nonce: 'n', auth_time: now }))
  for (const name of ['sub', 'jti', 'client_id', 'scope']) claim(`${name} missing`, without(name))
  return list.filter((forgery) => forgery.token !== '')
}
