import t, { type Test } from 'tap'
import * as oauth from 'oauth4webapi'
import { calculateJwkThumbprint, createRemoteJWKSet, exportJWK, jwtVerify, type JWTPayload } from 'jose'
import { freePort } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { sharedRedis } from './helper.js'

// DPoP (RFC 9449) with a client other people wrote: oauth4webapi signs the
// proofs and handles the server nonces (Baton requires them here), for the
// password, refresh and client-credentials grants and a protected-resource
// request over a real socket; jose verifies the issued access tokens and
// checks that `cnf.jkt` is the thumbprint of the client's key.

const AUDIENCE = 'baton-api'
const PASSWORD = 'correct horse battery staple'
const MACHINE = { client_id: 'dpop-machine', secret: 'dpop-machine-secret-0123456789' }

/** Sends a request, and once more if the server asked for a proof with its nonce (oauth4webapi's DPoP handle has kept the nonce). */
async function withNonce<T> (attempt: () => Promise<T>): Promise<{ result: T, challenged: boolean }> {
  try {
    return { result: await attempt(), challenged: false }
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error
    return { result: await attempt(), challenged: true }
  }
}

t.test('oauth4webapi\'s DPoP against Baton, checked by jose', async (t) => {
  const redis = await sharedRedis()
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const app = await buildApp(loadConfig({
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `interop-dpop${process.pid}:`,
    ISSUER: issuer,
    AUDIENCE,
    LOG_LEVEL: 'silent',
    DPOP_NONCE: 'required',
    CLIENTS: JSON.stringify([
      { client_id: MACHINE.client_id, client_secret: MACHINE.secret, grant_types: ['client_credentials'], scope: 'reports:read', dpop_bound_access_tokens: true }
    ])
  }))
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port })

  const insecure = { [oauth.allowInsecureRequests]: true } as const
  const publicClient: oauth.Client = { client_id: 'baton' }
  const machine: oauth.Client = { client_id: MACHINE.client_id }

  const registered = await fetch(`${issuer}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'grace', password: PASSWORD }) })
  t.equal(registered.status, 201)
  const { id: userId } = await registered.json() as { id: string }

  const issuerUrl = new URL(issuer)
  const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...insecure }))
  t.ok(as.dpop_signing_alg_values_supported?.includes('ES256'), 'discovery lists ES256 for DPoP proofs')
  t.ok(as.dpop_signing_alg_values_supported?.includes('EdDSA'), 'and EdDSA')

  const jwks = createRemoteJWKSet(new URL(as.jwks_uri!))
  async function verifyBound (t: Test, token: string, keyPair: CryptoKeyPair): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, jwks, { issuer, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['EdDSA', 'ES256'] })
    t.equal((payload.cnf as { jkt?: string } | undefined)?.jkt, await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)), 'jose: cnf.jkt is the thumbprint of the client\'s key')
    return payload
  }

  const keyPair = await oauth.generateKeyPair('ES256')
  const DPoP = oauth.DPoP(publicClient, keyPair)
  let tokens: oauth.TokenEndpointResponse

  t.test('password grant with a DPoP proof: a nonce challenge, then a DPoP-bound token', async (t) => {
    const { result, challenged } = await withNonce(async () => await oauth.processGenericTokenEndpointResponse(as, publicClient,
      await oauth.genericTokenEndpointRequest(as, publicClient, oauth.None(), 'password', { username: 'grace', password: PASSWORD }, { DPoP, ...insecure })))
    tokens = result
    t.ok(challenged, 'Baton asked for its nonce first (use_dpop_nonce), and oauth4webapi answered it')
    t.equal(tokens.token_type, 'dpop', 'token_type DPoP')
    t.type(tokens.refresh_token, 'string')
    const claims = await verifyBound(t, tokens.access_token, keyPair)
    t.match(claims, { sub: userId, client_id: 'baton', sid: String })
    t.equal((claims.cnf as { jkt: string }).jkt, await DPoP.calculateThumbprint(), 'the thumbprint oauth4webapi computes too')
  })

  t.test('refresh grant with a proof of the same key: rotated, still bound', async (t) => {
    const before = await verifyBound(t, tokens.access_token, keyPair)
    const { result } = await withNonce(async () => await oauth.processRefreshTokenResponse(as, publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), tokens.refresh_token!, { DPoP, ...insecure })))
    t.equal(result.token_type, 'dpop')
    t.not(result.refresh_token, tokens.refresh_token, 'a new refresh token')
    const after = await verifyBound(t, result.access_token, keyPair)
    t.equal(after.sid, before.sid, 'the same session goes on')
    tokens = result
  })

  t.test('a protected-resource request with the token and a proof (ath), which oauth4webapi\'s own RFC 9068 + DPoP check accepts too', async (t) => {
    let sent: Request | undefined
    const { result: response } = await withNonce(async () => {
      const response = await oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(`${issuer}/sessions`), undefined, undefined, {
        DPoP,
        ...insecure,
        [oauth.customFetch]: async (url, init) => {
          sent = new Request(url, init)
          return await fetch(url, init)
        }
      })
      return response
    })
    t.equal(response.status, 200, 'GET /sessions answered the DPoP-bound token')
    t.match(await response.json(), { sessions: [{ current: true }] })
    t.match(sent?.headers.get('authorization'), /^DPoP /, 'sent as Authorization: DPoP')
    const validated = await oauth.validateJwtAccessToken(as, sent!, AUDIENCE, { ...insecure, requireDPoP: true, signingAlgorithms: ['EdDSA', 'ES256'] })
    t.equal(validated.sub, userId, 'the request passes oauth4webapi\'s resource-server check, proof included')
  })

  t.test('client_credentials for a client registered with dpop_bound_access_tokens, with an EdDSA key', async (t) => {
    const auth = oauth.ClientSecretBasic(MACHINE.secret)
    const refused = await oauth.processClientCredentialsResponse(as, machine,
      await oauth.clientCredentialsGrantRequest(as, machine, auth, { scope: 'reports:read' }, insecure)).catch((error: unknown) => error)
    t.match(refused, { error: 'invalid_dpop_proof', status: 400 }, 'without a proof: refused')

    const machineKeys = await oauth.generateKeyPair('EdDSA')
    const machineDPoP = oauth.DPoP(machine, machineKeys)
    const { result } = await withNonce(async () => await oauth.processClientCredentialsResponse(as, machine,
      await oauth.clientCredentialsGrantRequest(as, machine, auth, { scope: 'reports:read' }, { DPoP: machineDPoP, ...insecure })))
    t.equal(result.token_type, 'dpop')
    t.match(await verifyBound(t, result.access_token, machineKeys), { sub: MACHINE.client_id, scope: 'reports:read' })
  })

  t.test('the refresh token with a proof of another key: refused', async (t) => {
    const other = oauth.DPoP(publicClient, await oauth.generateKeyPair('ES256'))
    const refused = await withNonce(async () => await oauth.processRefreshTokenResponse(as, publicClient,
      await oauth.refreshTokenGrantRequest(as, publicClient, oauth.None(), tokens.refresh_token!, { DPoP: other, ...insecure }))).catch((error: unknown) => error)
    t.match(refused, { error: 'invalid_grant', status: 400 }, 'invalid_grant: the token is bound to the first key')
  })
})
