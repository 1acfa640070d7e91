// Bench-only seeding through the auth-service's own code: its SessionStore
// (the create-session Lua script) and its user store, against the Redis and
// REFRESH_TOKEN_SECRET the running service uses. A login per refresh token
// would spend one argon2 hash each, far slower than the rotation under test.
import { Redis } from 'ioredis'
import { RedisUserStore, RefreshTokenCodec, SessionStore, createPasswordHasher, defineScripts, randomId, redisKeys } from '@baton/auth-service/core'

const DAY_MS = 86_400_000

export async function openSeeder ({ redisUrl, secret, prefix = 'baton:' }) {
  const redis = new Redis(redisUrl)
  defineScripts(redis)
  const keys = redisKeys(prefix)
  const codec = new RefreshTokenCodec(secret)
  const sessions = new SessionStore(redis, keys, codec, {
    idleMs: 14 * DAY_MS, absoluteMs: 90 * DAY_MS, graceMs: 10_000, graceRetries: 5, maxSessionsPerUser: 100
  }, Date.now)
  const users = new RedisUserStore(redis, keys, Date.now)
  const context = { clientId: 'baton', userAgent: 'baton-bench', ip: '127.0.0.1' }

  return {
    /** `count` fresh sessions, one per new user id, and their first refresh tokens; bound to the DPoP key `jkt` if given. */
    async refreshTokens (count, { batch = 500, jkt } = {}) {
      const tokens = []
      for (let start = 0; start < count; start += batch) {
        const created = await Promise.all(Array.from({ length: Math.min(batch, count - start) }, async (_, i) =>
          await sessions.create({ uid: randomId(), username: `bench-user-${start + i}`, scope: 'profile', credentialVersion: 0, jkt }, context)))
        for (const session of created) tokens.push(session.refreshToken)
      }
      return tokens
    },
    /** `count` users sharing one password, hashed once with the service's argon2 parameters. */
    async users (count, password, argon2) {
      const hasher = await createPasswordHasher(argon2)
      const passwordHash = await hasher.hash(password)
      const names = []
      for (let i = 0; i < count; i++) {
        const username = `bench-login-${i}-${randomId().slice(0, 6)}`
        await users.create({ username, passwordHash, scopes: ['profile'] })
        names.push(username)
      }
      return names
    },
    /** Calls per Redis command so far (INFO commandstats), to count round trips per request. */
    async commandCounts () {
      const counts = {}
      for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts[match[1]] = Number(match[2])
      return counts
    },
    async close () { await redis.quit() }
  }
}
