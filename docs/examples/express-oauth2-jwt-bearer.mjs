import express from 'express'
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'

const app = express()
app.use(auth({
  issuer,
  audience: 'baton-api',
  jwksUri: `${issuer}/.well-known/jwks.json`,
  // Baton signs with Ed25519 unless its signing key is a P-256 one (then 'ES256').
  tokenSigningAlg: 'EdDSA',
  // RFC 9068: typ at+jwt and the claims an access token must carry.
  strict: true
}))
app.get('/me', (req, res) => {
  res.json({ sub: req.auth.payload.sub, scope: req.auth.payload.scope })
})
app.get('/reports', requiredScopes('reports:read'), (req, res) => {
  res.json({ reports: [] })
})

app.listen(Number(process.env.PORT ?? 3003))
