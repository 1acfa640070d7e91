import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { createSigner } from 'fast-jwt'
import { ACCESS_TOKEN_TYP, BatonError, type AccessTokenAlgorithm } from '@baton/tokens'
import { storage } from './redis.js'

export interface PublicJwk {
  kty: string
  crv: string
  x: string
  y?: string
  kid: string
  alg: AccessTokenAlgorithm
  use: 'sig'
}

export interface SigningKey {
  kid: string
  alg: AccessTokenAlgorithm
  publicKey: KeyObject
  publicJwk: PublicJwk
  /** Signs a complete claim set as an `at+jwt` JWS with this key's `kid`. */
  sign: (claims: Record<string, unknown>) => string
}

/** Reads a private key and names its algorithm; throws for key types Baton does not sign with. */
export function parseSigningKey (pem: string): { privateKey: KeyObject, alg: AccessTokenAlgorithm } {
  const privateKey = createPrivateKey(pem)
  if (privateKey.asymmetricKeyType === 'ed25519') return { privateKey, alg: 'EdDSA' }
  if (privateKey.asymmetricKeyType === 'ec' && privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { privateKey, alg: 'ES256' }
  throw new Error('the signing key must be an Ed25519 or P-256 private key')
}

/** RFC 7638 thumbprint: a kid that anyone can recompute from the public key. */
function thumbprint (jwk: { kty?: string, crv?: string, x?: string, y?: string }): string {
  const members = jwk.kty === 'EC'
    ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

export function signingKeyFromPem (pem: string): SigningKey {
  const { privateKey, alg } = parseSigningKey(pem)
  const publicKey = createPublicKey(privateKey)
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
  const signer = createSigner({
    key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    algorithm: alg,
    // Claims carry their own iat/exp from the injected clock, which fast-jwt keeps as given.
    header: { alg, typ: ACCESS_TOKEN_TYP, kid }
  })
  return { kid, alg, publicKey, publicJwk, sign: (claims) => signer(claims) }
}

interface StoredKey {
  kid: string
  alg: AccessTokenAlgorithm
  pem: string
  created_at: number
}

/**
 * Loads the generated keyring, creating it on first start. SET NX makes the
 * first instance's key the one every instance and every restart uses.
 */
async function loadGeneratedKeys (redis: Redis, key: string, now: () => number): Promise<SigningKey[]> {
  let stored = await storage(redis.get(key))
  if (stored === null) {
    const { privateKey } = generateKeyPairSync('ed25519')
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    const candidate: StoredKey[] = [{ kid: signingKeyFromPem(pem).kid, alg: 'EdDSA', pem, created_at: now() }]
    await storage(redis.set(key, JSON.stringify(candidate), 'NX'))
    stored = await storage(redis.get(key))
    if (stored === null) throw new BatonError('BATON_UNAVAILABLE', 'signing keys could not be stored')
  }
  return (JSON.parse(stored) as StoredKey[]).map((entry) => signingKeyFromPem(entry.pem))
}

async function loadRefreshSecret (redis: Redis, key: string): Promise<string> {
  await storage(redis.set(key, randomBytes(32).toString('base64url'), 'NX'))
  const secret = await storage(redis.get(key))
  if (secret === null) throw new BatonError('BATON_UNAVAILABLE', 'refresh-token secret could not be stored')
  return secret
}

export interface Keyring {
  ready: () => boolean
  /** The key that signs new tokens; 503 until the keyring has loaded. */
  current: () => SigningKey
  /** Keys verifiers must accept. */
  all: () => readonly SigningKey[]
  refreshTokenSecret: () => string
}

declare module 'fastify' {
  interface FastifyInstance {
    keyring: Keyring
  }
}

export interface KeyringOptions {
  /** An operator-supplied PEM; undefined: generate once and share through Redis. */
  signingKeyPem: string | undefined
  refreshTokenSecret: string | undefined
  signingKeysKey: string
  refreshTokenSecretKey: string
  now: () => number
}

/**
 * Signing keys and the refresh-token secret. With Redis down at start the
 * service still comes up, unready, and keeps trying once a second.
 */
export const keyringPlugin = fp(async function keyring (app: FastifyInstance, opts: KeyringOptions) {
  let keys: SigningKey[] = opts.signingKeyPem === undefined ? [] : [signingKeyFromPem(opts.signingKeyPem)]
  let refreshSecret = opts.refreshTokenSecret
  let retry: NodeJS.Timeout | undefined

  const loaded = (): boolean => keys.length > 0 && refreshSecret !== undefined
  const load = async (): Promise<void> => {
    try {
      if (keys.length === 0) keys = await loadGeneratedKeys(app.redis, opts.signingKeysKey, opts.now)
      if (refreshSecret === undefined) refreshSecret = await loadRefreshSecret(app.redis, opts.refreshTokenSecretKey)
      app.log.info({ kids: keys.map((key) => key.kid) }, 'signing keys loaded')
    } catch (error) {
      app.log.warn({ err: { message: (error as Error).message } }, 'keys not loaded yet; retrying')
      retry = setTimeout(() => { void load() }, 1000)
      retry.unref()
    }
  }

  app.decorate('keyring', {
    ready: loaded,
    current: () => {
      const key = keys[0]
      if (key === undefined) throw new BatonError('BATON_UNAVAILABLE', 'signing keys are not loaded yet', { headers: { 'retry-after': '1' } })
      return key
    },
    all: () => keys,
    refreshTokenSecret: () => {
      if (refreshSecret === undefined) throw new BatonError('BATON_UNAVAILABLE', 'keys are not loaded yet', { headers: { 'retry-after': '1' } })
      return refreshSecret
    }
  } satisfies Keyring)
  app.addReadinessCheck('keys', () => loaded() ? undefined : 'signing keys not loaded')
  app.addHook('onReady', async () => { if (!loaded()) await load() })
  app.addHook('onClose', async () => { clearTimeout(retry) })
}, { name: 'baton-keyring', fastify: '5.x', dependencies: ['baton-redis', 'baton-health'] })
