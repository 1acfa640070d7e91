import { createServer } from 'node:http'
import { nodeVerifier } from '@baton/verifier/node'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'

const baton = nodeVerifier({
  issuer,
  audience: 'baton-api',
  jwksUri: `${issuer}/.well-known/jwks.json`
})
const readReports = baton.requireScope('reports:read')

function json (res, body) {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

const server = createServer(async (req, res) => {
  try {
    if (req.url === '/me') {
      const claims = await baton.authenticate(req, res)
      // undefined: refused, and the RFC 6750 answer has been written.
      if (claims !== undefined) json(res, { sub: claims.sub, scope: claims.scope })
    } else if (req.url === '/reports') {
      const claims = await readReports(req, res)
      if (claims !== undefined) json(res, { reports: [] })
    } else {
      res.writeHead(404).end()
    }
  } catch (error) {
    console.error(error)
    res.writeHead(500).end()
  }
})

server.listen(Number(process.env.PORT ?? 3003))
