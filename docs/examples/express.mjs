import express from 'express'
import { expressVerifier } from '@baton/verifier/express'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'

const baton = expressVerifier({
  issuer,
  audience: 'baton-api',
  jwksUri: `${issuer}/.well-known/jwks.json`
})

const app = express()
// req.auth holds the token's claims once a middleware has admitted it.
app.get('/me', baton.authenticate, (req, res) => {
  res.json({ sub: req.auth.sub, scope: req.auth.scope })
})
app.get('/reports', baton.requireScope('reports:read'), (req, res) => {
  res.json({ reports: [] })
})

app.listen(Number(process.env.PORT ?? 3003))
