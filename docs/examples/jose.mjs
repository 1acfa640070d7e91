import { createServer } from 'node:http'
import { createRemoteJWKSet, jwtVerify } from 'jose'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'
const keys = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))

const server = createServer(async (req, res) => {
  const [scheme, token, ...rest] = (req.headers.authorization ?? '').split(' ')
  if (scheme.toLowerCase() !== 'bearer' || !token || rest.length > 0) {
    res.writeHead(401, { 'www-authenticate': 'Bearer realm="api"' }).end()
    return
  }
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer,
      audience: 'baton-api',
      typ: 'at+jwt',
      algorithms: ['EdDSA', 'ES256']
    })
    // A DPoP-bound token (RFC 9449) is worth nothing without the proof this server does not check.
    if (payload.cnf !== undefined) throw new Error('a DPoP-bound token sent as Bearer')
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sub: payload.sub, scope: payload.scope }))
  } catch {
    res.writeHead(401, { 'www-authenticate': 'Bearer realm="api", error="invalid_token"' }).end()
  }
})

server.listen(Number(process.env.PORT ?? 3003))
