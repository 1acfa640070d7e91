import express from 'express'
import { Redis } from 'ioredis'
import { expressVerifier } from '@baton/verifier/express'
import { RevocationFeed } from '@baton/verifier/feed'

const issuer = process.env.ISSUER ?? 'http://127.0.0.1:3001'

// The auth-service's Redis, on a connection of its own: it blocks on XREAD.
// Its command timeout must outlast the feed's blocking read (2 s).
const feed = new RevocationFeed({
  client: new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true, commandTimeout: 5000 }),
  ownsClient: true,
  keyPrefix: 'baton:'
})
feed.start()

const baton = expressVerifier({
  issuer,
  audience: 'baton-api',
  jwksUri: `${issuer}/.well-known/jwks.json`,
  // One or two Map lookups per request: no Redis call, revoked sessions refused within milliseconds.
  isRevoked: feed.isRevoked
})

const app = express()
app.get('/me', baton.authenticate, (req, res) => {
  res.json({ sub: req.auth.sub, scope: req.auth.scope })
})

// Until the feed has read the stream once, revocations made earlier are unknown.
await feed.whenCaughtUp()
app.listen(Number(process.env.PORT ?? 3003))
