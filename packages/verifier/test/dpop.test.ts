// The shared DPoP proof check (RFC 9449 §4.3): real keys, real signatures,
// one assertion per way a proof can be forged, replayed or misdirected.
import { constants, generateKeyPairSync, sign as signWith, type KeyObject, type SignKeyObjectInput } from 'node:crypto'
import t, { type Test } from 'tap'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import {
  accessTokenHash, checkDpopProof, createDpopNonces, createMemoryReplayCache, DpopError, normalizeHtu, DPOP_ALGORITHMS,
  type DpopProofOptions, type DpopRefusalReason
} from '../src/dpop.js'
import { generateProofKey, signProof, type ProofKey } from './helper.js'

const URL_ = 'https://api.example.com/reports'
const NOW = 1_800_000_000_000

const proofKey = generateProofKey
/** A proof signed by `key`: valid for GET URL_ at NOW unless `claims` or `header` say otherwise. */
async function sign (key: ProofKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return await signProof(key, { htu: URL_, nowMs: NOW }, claims, header)
}

function options (overrides: Partial<DpopProofOptions> = {}): DpopProofOptions {
  return { method: 'GET', url: URL_, now: () => NOW, replay: createMemoryReplayCache({ now: () => NOW }), ...overrides }
}

/** One assertion: refused with this reason (and its RFC 9449 code). */
async function refused (t: Test, promise: Promise<unknown>, reason: DpopRefusalReason, message?: string): Promise<void> {
  try {
    await promise
    t.fail(`accepted, not refused for ${reason}`)
  } catch (error) {
    if (!(error instanceof DpopError)) throw error
    t.same({ reason: error.reason, code: error.code }, { reason, code: reason === 'nonce' ? 'use_dpop_nonce' : 'invalid_dpop_proof' }, message ?? `refused for ${reason}`)
  }
}

/** base64url JSON, for hand-made proofs. */
const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

t.test('a valid proof resolves to its key thumbprint, jti and iat, for every default algorithm', async (t) => {
  for (const alg of DPOP_ALGORITHMS) {
    const key = await proofKey(alg)
    const proof = await sign(key)
    const result = await checkDpopProof(proof, options())
    t.match(result, { jkt: key.jkt, jti: String, iat: NOW / 1000, jwk: { kty: key.jwk.kty } }, alg)
  }
})

t.test('attacks and mistakes, each refused', async (t) => {
  const key = await proofKey('ES256')
  const other = await proofKey('ES256')
  const token = 'eyJ.access.token'

  await t.test('a replayed proof', async (t) => {
    const replay = createMemoryReplayCache({ now: () => NOW })
    const proof = await sign(key)
    await checkDpopProof(proof, options({ replay }))
    await refused(t, checkDpopProof(proof, options({ replay })), 'replay')
  })
  await t.test('a proof for another method', async (t) => {
    await refused(t, checkDpopProof(await sign(key), options({ method: 'POST' })), 'htm')
  })
  await t.test('a proof for another URL', async (t) => {
    await refused(t, checkDpopProof(await sign(key), options({ url: 'https://api.example.com/admin' })), 'htu')
  })
  await t.test('a proof for another origin', async (t) => {
    await refused(t, checkDpopProof(await sign(key), options({ url: 'https://evil.example.com/reports' })), 'htu')
  })
  await t.test('a proof issued too long ago', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { iat: NOW / 1000 - 66 }), options()), 'iat')
  })
  await t.test('a proof issued in the future', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { iat: NOW / 1000 + 6 }), options()), 'iat')
  })
  await t.test('a proof without iat', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { iat: undefined }), options()), 'iat')
  })
  await t.test('a proof for another access token', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { ath: accessTokenHash('another.token') }), options({ accessToken: token })), 'ath')
  })
  await t.test('a proof without ath when a token comes with it', async (t) => {
    await refused(t, checkDpopProof(await sign(key), options({ accessToken: token })), 'ath')
  })
  await t.test('another typ', async (t) => {
    await refused(t, checkDpopProof(await sign(key, {}, { typ: 'JWT' }), options()), 'typ')
  })
  await t.test('alg none', async (t) => {
    const unsigned = `${part({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })}.${part({ jti: 'x', htm: 'GET', htu: URL_, iat: NOW / 1000 })}.`
    await refused(t, checkDpopProof(unsigned, options()), 'malformed', 'an unsigned JWS is not even read')
    await refused(t, checkDpopProof(`${unsigned}AAAA`, options()), 'algorithm', 'nor is alg none with a signature')
  })
  await t.test('alg HS256 with a symmetric key in the header', async (t) => {
    const secret = new TextEncoder().encode('a shared secret of thirty-two by')
    const proof = await new SignJWT({ jti: 'hs', htm: 'GET', htu: URL_, iat: NOW / 1000 })
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } })
      .sign(secret)
    await refused(t, checkDpopProof(proof, options()), 'algorithm')
  })
  await t.test('an algorithm left out of `algorithms`', async (t) => {
    await refused(t, checkDpopProof(await sign(await proofKey('EdDSA')), options({ algorithms: ['ES256'] })), 'algorithm')
  })
  await t.test('a private key in the jwk header', async (t) => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true })
    const privateJwk = await exportJWK(privateKey)
    await refused(t, checkDpopProof(await sign({ ...key, privateKey, jwk: privateJwk }), options()), 'jwk')
  })
  await t.test('a key of another type than the algorithm needs', async (t) => {
    const ed = await proofKey('EdDSA')
    await refused(t, checkDpopProof(await sign(key, {}, { jwk: ed.jwk }), options()), 'jwk')
  })
  await t.test('no jwk header', async (t) => {
    await refused(t, checkDpopProof(await sign(key, {}, { jwk: undefined }), options()), 'jwk')
  })
  await t.test('a jwk that is not the signing key', async (t) => {
    await refused(t, checkDpopProof(await sign(key, {}, { jwk: other.jwk }), options()), 'signature')
  })
  await t.test('an RSA key beyond 4096 bits', async (t) => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 4608 })
    const jwk = publicKey.export({ format: 'jwk' }) as JWK
    await refused(t, checkDpopProof(await sign({ alg: 'RS256', privateKey: privateKey as unknown as CryptoKey, jwk, jkt: '' }), options()), 'jwk')
  })
  await t.test('two DPoP headers', async (t) => {
    const [a, b] = [await sign(key), await sign(key)]
    await refused(t, checkDpopProof([a, b], options()), 'multiple', 'as two values')
    await refused(t, checkDpopProof(`${a}, ${b}`, options()), 'multiple', 'as Node joins them')
  })
  await t.test('garbage', async (t) => {
    for (const garbage of ['garbage', 'a.b.c', '...', 'eyJ.eyJ.', `${part('not an object')}.${part({})}.AAAA`, `${part({ typ: 'dpop+jwt', alg: 'ES256' })}.bm90IGpzb24.AAAA`]) {
      try {
        await checkDpopProof(garbage, options())
        t.fail(`accepted ${garbage}`)
      } catch (error) {
        t.ok(error instanceof DpopError && error.code === 'invalid_dpop_proof', `refused: ${garbage.slice(0, 40)}`)
      }
    }
  })
  await t.test('a huge proof, before any parsing', async (t) => {
    await refused(t, checkDpopProof('A'.repeat(1_000_000) + '.' + 'A'.repeat(10) + '.' + 'A', options()), 'too_large')
  })
  await t.test('no proof', async (t) => {
    await refused(t, checkDpopProof(undefined, options()), 'missing')
  })
  await t.test('a header naming a member twice', async (t) => {
    const proof = await sign(key)
    const [header, payload, signature] = proof.split('.') as [string, string, string]
    const doubled = Buffer.from(Buffer.from(header, 'base64url').toString().replace('{', '{"typ":"JWT",')).toString('base64url')
    await refused(t, checkDpopProof(`${doubled}.${payload}.${signature}`, options()), 'duplicate')
  })
  await t.test('a proof signed by a key other than the bound one', async (t) => {
    await refused(t, checkDpopProof(await sign(other), options({ expectedJkt: key.jkt })), 'key')
  })
  await t.test('no jti, or a huge one', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { jti: undefined }), options()), 'jti', 'none')
    await refused(t, checkDpopProof(await sign(key, { jti: 'j'.repeat(257) }), options()), 'jti', 'too long')
  })
  await t.test('a tampered signature', async (t) => {
    const proof = await sign(key)
    const tampered = proof.slice(0, -4) + (proof.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    await refused(t, checkDpopProof(tampered, options()), 'signature')
  })
  await t.test('an expired exp claim', async (t) => {
    await refused(t, checkDpopProof(await sign(key, { exp: NOW / 1000 - 30 }), options()), 'claims')
  })
})

/** A proof signed by node:crypto, for what jose would not sign: `alg` in the header, the signature made by `signer`. */
function handSigned (header: Record<string, unknown>, claims: JWTPayload, signer: (data: Buffer) => Buffer): string {
  const input = `${part({ typ: 'dpop+jwt', ...header })}.${part({ jti: `hand-${Math.random()}`, htm: 'GET', htu: URL_, iat: NOW / 1000, ...claims })}`
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`
}
const signerOf = (algorithm: string, key: KeyObject | SignKeyObjectInput) => (data: Buffer): Buffer => signWith(algorithm, data, key)

t.test('imported keys are reused, and only for the very key a proof carries', async (t) => {
  const a = await proofKey('ES256')
  const b = await proofKey('ES256')
  t.equal((await checkDpopProof(await sign(a), options())).jkt, a.jkt, 'a first proof by one key')
  t.equal((await checkDpopProof(await sign(a), options())).jkt, a.jkt, 'a second proof by it')
  t.equal((await checkDpopProof(await sign(b), options())).jkt, b.jkt, 'another key with the same kid-less header gets its own thumbprint')
  await refused(t, checkDpopProof(await sign(b, {}, { jwk: a.jwk }), options()), 'signature', 'a cached key does not pass a proof signed by another key')
  await refused(t, checkDpopProof(await sign(a, {}, { jwk: b.jwk }), options()), 'signature', 'both ways')
  await refused(t, checkDpopProof(await sign(a, {}, { jwk: { ...a.jwk, kid: 'b' } }), options({ expectedJkt: b.jkt })), 'key', 'a kid changes nothing: the key is still bound by its thumbprint')
  await refused(t, checkDpopProof(await sign(a, {}, { jwk: { ...a.jwk, use: 'enc' } }), options()), 'jwk', 'what a cached key\'s header says of its use is still read')
  await refused(t, checkDpopProof(await sign(a, {}, { jwk: { ...a.jwk, alg: 'ES384' } }), options()), 'jwk', 'and of its algorithm')
  await refused(t, checkDpopProof(await sign(a, {}, { jwk: { ...a.jwk, key_ops: ['sign'] } }), options()), 'jwk', 'and of its operations')
  t.ok(await checkDpopProof(await sign(a, {}, { jwk: { ...a.jwk, kid: 'k', use: 'sig', alg: 'ES256', key_ops: ['verify'] } }), options()), 'while members that allow verifying are fine')
})

t.test('signatures are checked as their algorithm says, by node:crypto', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = rsa.publicKey.export({ format: 'jwk' })
  t.ok(await checkDpopProof(handSigned({ alg: 'RS256', jwk }, {}, signerOf('sha256', rsa.privateKey)), options()), 'RS256')
  t.ok(await checkDpopProof(handSigned({ alg: 'PS256', jwk }, {}, signerOf('sha256', { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })), options()), 'PS256, the same key now cached')
  await refused(t, checkDpopProof(handSigned({ alg: 'PS256', jwk }, {}, signerOf('sha256', rsa.privateKey)), options()), 'signature', 'a PKCS#1 v1.5 signature is no PS256 one')
  await refused(t, checkDpopProof(handSigned({ alg: 'RS256', jwk }, {}, signerOf('sha256', { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })), options()), 'signature', 'nor the other way')
  await refused(t, checkDpopProof(handSigned({ alg: 'PS256', jwk }, {}, signerOf('sha256', { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 })), options()), 'signature', 'a PSS salt of another length')
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
  await refused(t, checkDpopProof(handSigned({ alg: 'RS256', jwk: weak.publicKey.export({ format: 'jwk' }) }, {}, signerOf('sha256', weak.privateKey)), options()), 'jwk', 'an RSA key under 2048 bits')
  // OpenSSL bounds the exponent only for moduli over 3072 bits; a 2048-bit one with a 2040-bit exponent costs a private-key-sized operation per proof, signed or not.
  const hugeExponent = Buffer.alloc(255, 0xff).toString('base64url')
  await refused(t, checkDpopProof(handSigned({ alg: 'RS256', jwk: { ...jwk, e: hugeExponent } }, {}, () => Buffer.alloc(256, 1)), options()), 'jwk', 'an RSA exponent over 64 bits, refused before any verification')
  t.ok(await checkDpopProof(handSigned({ alg: 'RS256', jwk: { ...jwk, e: 'AAEAAQ' } }, {}, signerOf('sha256', rsa.privateKey)), options()), 'while 65537 with a leading zero byte is still 65537')
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const ecJwk = ec.publicKey.export({ format: 'jwk' })
  t.ok(await checkDpopProof(handSigned({ alg: 'ES256', jwk: ecJwk }, {}, signerOf('sha256', { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })), options()), 'ES256 as r‖s')
  await refused(t, checkDpopProof(handSigned({ alg: 'ES256', jwk: ecJwk }, {}, signerOf('sha256', ec.privateKey)), options()), 'signature', 'an ES256 signature in DER')
  await refused(t, checkDpopProof(handSigned({ alg: 'ES256', jwk: { ...ecJwk, x: ecJwk.y } }, {}, signerOf('sha256', { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })), options()), 'jwk', 'a point not on the curve')
  await refused(t, checkDpopProof(handSigned({ alg: 'ES256', jwk: { ...ecJwk, y: 7 } }, {}, signerOf('sha256', { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })), options()), 'jwk', 'a member that is no string')
})

t.test('what jose checked is still checked', async (t) => {
  const key = await proofKey('ES256')
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const critical = handSigned({ alg: 'ES256', jwk: ec.publicKey.export({ format: 'jwk' }), crit: ['exp'], exp: 1 }, {}, signerOf('sha256', { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))
  await refused(t, checkDpopProof(critical, options()), 'malformed', 'a critical extension')
  await refused(t, checkDpopProof(await sign(key, { nbf: NOW / 1000 + 30 }), options()), 'claims', 'an nbf in the future')
  await refused(t, checkDpopProof(await sign(key, { exp: 'soon' }), options()), 'claims', 'an exp that is no NumericDate')
  t.ok(await checkDpopProof(await sign(key, { exp: NOW / 1000 + 30, nbf: NOW / 1000 - 1 }), options()), 'exp and nbf that hold')
})

t.test('what is accepted', async (t) => {
  const key = await proofKey('ES256')
  const token = 'eyJ.access.token'
  t.equal((await checkDpopProof(await sign(key, { ath: accessTokenHash(token) }), options({ accessToken: token, expectedJkt: key.jkt }))).jkt, key.jkt, 'ath and the bound key')
  t.ok(await checkDpopProof(await sign(key, { iat: NOW / 1000 - 60 }), options()), 'a proof at the edge of the window')
  t.ok(await checkDpopProof(await sign(key, { iat: NOW / 1000 + 5 }), options()), 'a proof within the future skew')
  t.ok(await checkDpopProof(await sign(key), options({ url: 'https://API.example.com:443/reports?page=2#top' })), 'htu compared without query and fragment, case and default port normalised')
  t.ok(await checkDpopProof(await sign(key, { htu: 'https://api.example.com/%72eports' }), options()), 'percent-encoded unreserved characters decoded')
  t.ok(await checkDpopProof(await sign(key, {}, { typ: 'application/dpop+jwt' }), options()), 'typ with the application/ prefix')
  t.ok(await checkDpopProof([await sign(key)], options()), 'one header as an array of one')
  t.equal(normalizeHtu('https://user:pass@api.example.com/'), undefined, 'a URL with credentials is no htu')
  t.equal(normalizeHtu('ftp://api.example.com/'), undefined, 'nor is another scheme')
})

t.test('server nonces: a proof without the demanded nonce is told use_dpop_nonce', async (t) => {
  const key = await proofKey('ES256')
  await refused(t, checkDpopProof(await sign(key), options({ nonce: 'n-1' })), 'nonce', 'no nonce')
  await refused(t, checkDpopProof(await sign(key, { nonce: 'n-0' }), options({ nonce: 'n-1' })), 'nonce', 'a stale nonce')
  t.equal((await checkDpopProof(await sign(key, { nonce: 'n-1' }), options({ nonce: 'n-1' }))).nonce, 'n-1', 'the current nonce')
  const seen: unknown[] = []
  const accept = (nonce: string | undefined): boolean => { seen.push(nonce); return nonce === 'n-2' }
  t.ok(await checkDpopProof(await sign(key, { nonce: 'n-2' }), options({ nonce: accept })), 'a function decides')
  await refused(t, checkDpopProof(await sign(key), options({ nonce: accept })), 'nonce', 'and refuses')
  t.same(seen, ['n-2', undefined], 'told the proof\'s nonce, or undefined')
})

t.test('a refused proof is not remembered: its jti stays usable', async (t) => {
  const key = await proofKey('ES256')
  const replay = createMemoryReplayCache({ now: () => NOW })
  const proofForPost = await sign(key, { jti: 'same' })
  await refused(t, checkDpopProof(proofForPost, options({ replay, method: 'POST' })), 'htm')
  t.ok(await checkDpopProof(proofForPost, options({ replay })), 'the same proof passes where it belongs')
})

t.test('the memory replay cache: entries last until their proof\'s window ends, and it stays bounded', async (t) => {
  let now = NOW
  const cache = createMemoryReplayCache({ max: 2, now: () => now })
  t.equal(cache.remember('a', NOW / 1000 + 65), true, 'new')
  t.equal(cache.remember('a', NOW / 1000 + 65), false, 'seen')
  now += 64_000
  t.equal(cache.remember('a', NOW / 1000 + 65), false, 'still seen within the window')
  now += 2000
  t.equal(cache.remember('a', now / 1000 + 65), true, 'forgotten after it')
  cache.remember('b', now / 1000 + 65)
  cache.remember('c', now / 1000 + 65)
  t.equal(cache.remember('a', now / 1000 + 65), true, 'the oldest pushed out when full')
  t.throws(() => createMemoryReplayCache({ max: 0 }), /max/)
})

t.test('options are checked', async (t) => {
  const key = await proofKey('ES256')
  const proof = await sign(key)
  await t.rejects(checkDpopProof(proof, options({ algorithms: ['HS256'] })), /algorithms/, 'no symmetric algorithm')
  await t.rejects(checkDpopProof(proof, options({ algorithms: [] })), /algorithms/, 'not empty')
  await refused(t, checkDpopProof(proof, options({ url: '/reports' })), 'htu', 'a request URL that is not absolute is refused, not a crash')
  await t.rejects(checkDpopProof(proof, options({ maxAgeSeconds: -1 })), /maxAgeSeconds/)
  await t.rejects(checkDpopProof(proof, { method: 'GET', url: URL_ } as DpopProofOptions), /replay/)
})

t.test('stateless nonces: the same for every instance with the secret, good for their window and the next', async (t) => {
  let now = NOW
  const a = createDpopNonces({ secret: 'shared', lifetimeSeconds: 60, now: () => now })
  const b = createDpopNonces({ secret: 'shared', lifetimeSeconds: 60, now: () => now })
  const other = createDpopNonces({ lifetimeSeconds: 60, now: () => now })
  const nonce = a.current()
  t.ok(b.accepts(nonce), 'another instance with the secret accepts it')
  t.notOk(other.accepts(nonce), 'one without it does not')
  t.notOk(a.accepts(undefined), 'no nonce is no nonce')
  now += 60_000
  t.ok(a.accepts(nonce), 'still good in the next window')
  t.not(a.current(), nonce, 'while a new one goes out')
  now += 60_000
  t.notOk(a.accepts(nonce), 'gone after that')
  t.throws(() => createDpopNonces({ lifetimeSeconds: 0 }), /lifetimeSeconds/)
})
