import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { sessionLifetimes, type Config } from '../config.js'
import type { RedisKeys } from '../redis/keys.js'
import { RedisUserStore, type UserStore } from '../core/accounts/user-store.js'
import { SessionStore } from '../core/sessions/session-store.js'
import { RefreshTokenCodec } from '../core/sessions/refresh-token-codec.js'
import { DeviceTokenCodec } from '../core/sessions/device-token.js'
import { createPasswordHasher, type PasswordHasher } from '../core/accounts/password-hasher.js'
import { createAccessTokenIssuer, type AccessTokenIssuer } from '../core/access-tokens.js'
import { clientRegistry, type ClientConfig } from '../core/clients/clients.js'
import { RateLimiter } from '../core/rate-limits.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: () => number
    users: UserStore
    sessions: SessionStore
    passwords: PasswordHasher
    accessTokens: AccessTokenIssuer
    clients: ReadonlyMap<string, ClientConfig>
    limits: RateLimiter
  }
}

export interface AccountsOptions {
  config: Config
  keys: RedisKeys
  now: () => number
  users?: UserStore
}

/** The stores and token machinery the routes share. */
export const accountsPlugin = fp(async function accounts (app: FastifyInstance, opts: AccountsOptions) {
  const { config, keys, now } = opts
  const refreshTokenSecret = (): string => app.keyring.refreshTokenSecret()

  app.decorate('config', config)
  app.decorate('clock', now)
  app.decorate('users', opts.users ?? new RedisUserStore(app.redis, keys, now, { deadline: app.redisDeadline }))
  app.decorate('sessions', new SessionStore(app.redis, keys, new RefreshTokenCodec(refreshTokenSecret), sessionLifetimes(config), now, {
    // Half the command timeout for WAIT, so a replica that lags answers 503 before the command itself times out.
    replication: { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: Math.floor(config.REDIS_COMMAND_TIMEOUT / 2) },
    deadline: app.redisDeadline,
    feed: app.revocationFeed
  }))
  app.decorate('passwords', await createPasswordHasher({
    memoryKiB: config.ARGON2_MEMORY_KIB,
    iterations: config.ARGON2_ITERATIONS,
    parallelism: config.ARGON2_PARALLELISM,
    concurrency: config.ARGON2_CONCURRENCY
  }))
  app.decorate('accessTokens', createAccessTokenIssuer({
    keyring: app.keyring,
    issuer: config.ISSUER,
    audience: config.AUDIENCE,
    ttlSeconds: config.ACCESS_TOKEN_TTL,
    now
  }))
  app.decorate('limits', new RateLimiter(app.redis, keys, {
    accountFailures: config.RATE_LIMIT_ACCOUNT_FAILURES,
    ipFailures: config.RATE_LIMIT_IP_FAILURES,
    failureWindowMs: config.RATE_LIMIT_FAILURE_WINDOW * 1000,
    ipAttemptsPerMinute: config.RATE_LIMIT_IP_ATTEMPTS,
    knownClientMs: config.RATE_LIMIT_KNOWN_CLIENT_TTL * 1000,
    registrations: config.RATE_LIMIT_REGISTRATIONS,
    registrationWindowMs: config.RATE_LIMIT_REGISTRATION_WINDOW * 1000
  }, app.redisDeadline, {
    deviceTokens: new DeviceTokenCodec(refreshTokenSecret, config.RATE_LIMIT_KNOWN_CLIENT_TTL),
    now
  }))
  app.decorate('clients', clientRegistry(config.CLIENTS))
}, { name: 'baton-accounts', fastify: '5.x', dependencies: ['baton-redis', 'baton-keyring', 'baton-revocation-feed'] })
