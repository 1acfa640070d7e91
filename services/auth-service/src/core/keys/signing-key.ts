import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { ACCESS_TOKEN_TYP, type AccessTokenAlgorithm } from '@baton/tokens'

export interface PublicJwk {
  kty: string
  crv: string
  x: string
  y?: string
  kid: string
  alg: AccessTokenAlgorithm
  use: 'sig'
}

/** A key verifiers are told about; it signs only if the keyring holds its private part. */
export interface PublishedKey {
  kid: string
  alg: AccessTokenAlgorithm
  publicKey: KeyObject
  publicJwk: PublicJwk
}

export interface SigningKey extends PublishedKey {
  /** Signs a complete claim set as an `at+jwt` JWS with this key's `kid`. */
  sign: (claims: Record<string, unknown>) => string
}

function algorithmOf (key: KeyObject): AccessTokenAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new Error('the signing key must be an Ed25519 or P-256 private key')
}

/** Reads a private key and names its algorithm; throws for key types Baton does not sign with. */
function parseSigningKey (pem: string): { privateKey: KeyObject, alg: AccessTokenAlgorithm } {
  const privateKey = createPrivateKey(pem)
  return { privateKey, alg: algorithmOf(privateKey) }
}

/** RFC 7638 thumbprint: a kid that anyone can recompute from the public key. */
function thumbprint (jwk: { kty?: string, crv?: string, x?: string, y?: string }): string {
  const members = jwk.kty === 'EC'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

function publishedKeyFrom (publicKey: KeyObject, alg: AccessTokenAlgorithm): PublishedKey {
  const exported = publicKey.export({ format: 'jwk' })
  const kid = thumbprint(exported)
  const publicJwk: PublicJwk = {
    kty: String(exported.kty),
    crv: String(exported.crv),
    x: String(exported.x),
    ...(exported.y === undefined ? {} : { y: exported.y }),
    kid,
    alg,
    use: 'sig'
  }
  return { kid, alg, publicKey, publicJwk }
}

export function signingKeyFromPem (pem: string): SigningKey {
  const { privateKey, alg } = parseSigningKey(pem)
  const published = publishedKeyFrom(createPublicKey(privateKey), alg)
  const signer = createSigner({
    key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    algorithm: alg,
    // Claims carry their own iat/exp from the injected clock, which fast-jwt keeps as given.
    header: { alg, typ: ACCESS_TOKEN_TYP, kid: published.kid }
  })
  return { ...published, sign: (claims) => signer(claims) }
}

/** A private key (its public half is used) or an SPKI public key, for a key that is published but does not sign. */
function publishedKeyFromPem (pem: string): PublishedKey {
  const publicKey = createPublicKey(pem)
  return publishedKeyFrom(publicKey, algorithmOf(publicKey))
}

/** The kid a PEM private key would be published under. */
export function kidOf (pem: string): string {
  return publishedKeyFromPem(pem).kid
}

/** A fresh Ed25519 private key, PKCS#8 PEM: what the generated keyring stores. */
export function generateSigningKeyPem (): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g

/**
 * The PEM blocks of a SIGNING_KEY / SIGNING_KEY_FILE value, in order. Several
 * blocks let an operator rotate a supplied key: the first signs, the others
 * are only published.
 */
function splitPemBlocks (text: string): Array<{ label: string, pem: string }> {
  return [...text.matchAll(PEM_BLOCK)]
    .map((match) => ({ label: match[1]!, pem: `${match[0]}\n` }))
    // `openssl ecparam -genkey` writes the curve before a SEC1 key; the key names its curve itself.
    .filter((block) => block.label !== 'EC PARAMETERS')
}

const isPrivate = (label: string): boolean => label === 'PRIVATE KEY' || label === 'EC PRIVATE KEY'

/**
 * Operator-supplied keys: the first block is the private key that signs,
 * every further block (private or public) is published for verification only.
 * Throws a message meant for the variable's ConfigError.
 */
export function parseSuppliedKeys (text: string): { signer: SigningKey, published: PublishedKey[] } {
  const blocks = splitPemBlocks(text)
  const first = blocks[0]
  if (first === undefined) throw new Error('must hold an Ed25519 or P-256 private key in PKCS#8 PEM')
  if (!isPrivate(first.label)) throw new Error('must start with the private key that signs (BEGIN PRIVATE KEY)')
  let signer: SigningKey
  try {
    signer = signingKeyFromPem(first.pem)
  } catch {
    throw new Error('must hold an Ed25519 or P-256 private key in PKCS#8 PEM')
  }
  const published: PublishedKey[] = []
  const kids = new Set([signer.kid])
  for (const [index, block] of blocks.slice(1).entries()) {
    if (!isPrivate(block.label) && block.label !== 'PUBLIC KEY') {
      throw new Error(`key ${index + 2} must be a PKCS#8 private key or an SPKI public key`)
    }
    let key: PublishedKey
    try {
      key = publishedKeyFromPem(block.pem)
    } catch {
      throw new Error(`key ${index + 2} must be an Ed25519 or P-256 key`)
    }
    if (kids.has(key.kid)) throw new Error(`key ${index + 2} repeats an earlier key`)
    kids.add(key.kid)
    published.push(key)
  }
  return { signer, published }
}
