// The refresh peer: node-oidc-provider's refresh_token grant with a Redis
// adapter (bench/lib/oidc-redis-adapter.mjs), configured as close to Baton's
// refresh as it allows: a public client, the refresh token rotated on every
// use, and a JWT access token signed with Ed25519 (a resource server with
// the `jwt` format) rather than an opaque one stored in Redis.
// PORT and REDIS_URL come from the environment.
//
// POST /bench/seed?count=N creates N grants and refresh tokens through the
// provider's own models (Grant, RefreshToken) and answers their values, one a
// line: what a code exchange would have left behind, without the browser.
import { createServer } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import { Redis } from 'ioredis'
import Provider from 'oidc-provider'
import { redisAdapter } from './lib/oidc-redis-adapter.mjs'

export const CLIENT_ID = 'bench'
const RESOURCE = 'urn:baton:bench'
const port = Number(process.env.PORT)
const redis = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 0, enableAutoPipelining: true })
const signingKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })

const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: redisAdapter(redis),
  clients: [{ client_id: CLIENT_ID, token_endpoint_auth_method: 'none', grant_types: ['refresh_token', 'authorization_code'], redirect_uris: ['http://127.0.0.1/cb'], id_token_signed_response_alg: 'EdDSA' }],
  jwks: { keys: [{ ...signingKey, kid: 'bench', alg: 'EdDSA', use: 'sig' }] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  rotateRefreshToken: true,
  scopes: ['profile', 'offline_access'],
  ttl: { AccessToken: 900, RefreshToken: 14 * 86_400, Grant: 14 * 86_400 },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({ scope: 'profile', audience: RESOURCE, accessTokenTTL: 900, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } } })
    }
  }
})
// oidc-provider logs nothing per request on its own; errors it would emit are not wanted on stdout here.
provider.on('server_error', (_ctx, error) => { process.stderr.write(`oidc-provider: ${error.stack}\n`) })

async function seed (count) {
  const client = await provider.Client.find(CLIENT_ID)
  const tokens = []
  for (let i = 0; i < count; i += 200) {
    tokens.push(...await Promise.all(Array.from({ length: Math.min(200, count - i) }, async (_, j) => {
      const accountId = `bench-user-${i + j}`
      const grant = new provider.Grant({ accountId, clientId: CLIENT_ID })
      grant.addResourceScope(RESOURCE, 'profile')
      const grantId = await grant.save()
      const refreshToken = new provider.RefreshToken({ accountId, client, grantId, scope: 'profile', resource: RESOURCE, gty: 'authorization_code', authTime: Math.floor(Date.now() / 1000) })
      return await refreshToken.save()
    })))
  }
  return tokens
}

const callback = provider.callback()
const server = createServer((request, response) => {
  if (request.url === '/healthz') {
    response.end('{"status":"ok"}')
  } else if (request.method === 'POST' && request.url.startsWith('/bench/seed?')) {
    const count = Number(new URL(request.url, 'http://x').searchParams.get('count'))
    seed(count).then((tokens) => response.end(tokens.join('\n')), (error) => {
      response.statusCode = 500
      response.end(String(error.stack))
    })
  } else {
    callback(request, response)
  }
})
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.close()
    server.closeIdleConnections()
    redis.quit().then(() => process.exit(0), () => process.exit(1))
  })
}
server.listen(port, '127.0.0.1')
