// RFC 9449 proofs as a client makes them, for the bench's DPoP scenarios:
// one P-256 key, ES256, a fresh jti and iat per proof. The parent (run.mjs)
// seeds the sessions bound to the key; the load generator signs per request.
import { createHash, createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto'

/** A new P-256 key as a private JWK (it crosses to the load process by IPC), and its RFC 7638 thumbprint. */
export function dpopKey () {
  const privateJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })
  // RFC 7638: SHA-256 of the required members, in lexicographic order, no white space.
  const jkt = createHash('sha256').update(JSON.stringify({ crv: privateJwk.crv, kty: privateJwk.kty, x: privateJwk.x, y: privateJwk.y })).digest('base64url')
  return { privateJwk, jkt }
}

/** A signer of proofs under `privateJwk`: `proof(htm, htu, accessToken?)`, with `ath` when an access token is given. */
export function dpopSigner (privateJwk) {
  const key = createPrivateKey({ key: privateJwk, format: 'jwk' })
  const { kty, crv, x, y } = privateJwk
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'dpop+jwt', jwk: { kty, crv, x, y } })).toString('base64url')
  return (htm, htu, accessToken) => {
    const claims = { htm, htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID() }
    if (accessToken !== undefined) claims.ath = createHash('sha256').update(accessToken).digest('base64url')
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
    const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    return `${header}.${payload}.${signature}`
  }
}
