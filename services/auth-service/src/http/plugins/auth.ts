import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { argon2Parameters, rateLimitSettings, sessionLifetimes, sessionReplication, type Config } from '../../config.js'
import type { RedisKeys } from '../../redis/keys.js'
import { createAccessTokenIssuer, type AccessTokenIssuer } from '../../core/access-tokens.js'
import { createPasswordHasher, type PasswordHasher } from '../../core/accounts/password-hasher.js'
import { RedisUserStore, type UserStore } from '../../core/accounts/user-store.js'
import { clientRegistry, type ClientConfig } from '../../core/clients/clients.js'
import { OriginPolicy } from '../../core/clients/origins.js'
import { createGrants, type Grants } from '../../core/grants/index.js'
import { RateLimiter } from '../../core/accounts/rate-limits.js'
import { DeviceTokenCodec } from '../../core/sessions/device-token.js'
import { RefreshTokenCodec } from '../../core/sessions/refresh-token-codec.js'
import { SessionStore } from '../../core/sessions/session-store.js'
import type { DpopNonces, DpopReplayCache } from '@baton/verifier/dpop'
import { sharedDpopNonces } from '../../core/dpop/nonces.js'
import { RedisDpopReplayCache } from '../../core/dpop/replay-cache.js'
import { TokenRequestProofs } from '../../core/dpop/token-request-proof.js'
import type { AuthMetrics } from '../../observability/metrics.js'

/** The auth-service's domain objects, built once per app; routes reach them as `app.auth`. */
export interface Auth {
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  clock: () => number
  clients: ReadonlyMap<string, ClientConfig>
  /** Which pages may call the auth-service, and use a cookie-mode client. */
  origins: OriginPolicy
  users: UserStore
  passwords: PasswordHasher
  sessions: SessionStore
  limits: RateLimiter
  accessTokens: AccessTokenIssuer
  /** The token endpoint's dispatch table. */
  grants: Grants
  /** The token endpoint's DPoP proofs (RFC 9449). */
  dpop: TokenRequestProofs
  /** Where every DPoP proof the service accepts is remembered, the token endpoint's and its own routes' alike. */
  dpopReplay: DpopReplayCache
  /** The server nonces every proof must carry, when DPOP_NONCE is required. */
  dpopNonces: DpopNonces | undefined
  metrics: AuthMetrics
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: Auth
  }
}

export interface AuthPluginOptions {
  config: Config
  keys: RedisKeys
  now: () => number
  metrics: AuthMetrics
  /** Another user store than Redis's. */
  users?: UserStore | undefined
}

/** Builds the domain objects from the configuration, the keyring, Redis and the revocation feed, and decorates `app.auth`. */
export const authPlugin = fp(async function auth (app: FastifyInstance, opts: AuthPluginOptions) {
  const { config, keys, now } = opts
  // The codecs read the secret at each use: it arrives from Redis after start-up, and may be replaced.
  const refreshTokenSecret = (): string => app.keyring.refreshTokenSecret()
  const users = opts.users ?? new RedisUserStore(app.redis, keys, now, { deadline: app.redisDeadline })
  const passwords = await createPasswordHasher(argon2Parameters(config))
  const sessions = new SessionStore(app.redis, keys, new RefreshTokenCodec(refreshTokenSecret), sessionLifetimes(config), now, {
    replication: sessionReplication(config),
    deadline: app.redisDeadline,
    feed: app.revocationFeed
  })
  const limits = new RateLimiter(app.redis, keys, rateLimitSettings(config), app.redisDeadline, {
    deviceTokens: new DeviceTokenCodec(refreshTokenSecret, config.RATE_LIMIT_KNOWN_CLIENT_TTL),
    now
  })
  // Derived from the refresh-token secret: every instance issues and accepts the same nonces.
  const dpopNonces = config.DPOP_NONCE === 'required' ? sharedDpopNonces(refreshTokenSecret, config.DPOP_NONCE_LIFETIME, now) : undefined
  const dpopReplay = new RedisDpopReplayCache(app.redis, keys, now)
  const accessTokens = createAccessTokenIssuer({ keyring: app.keyring, issuer: config.ISSUER, audience: config.AUDIENCE, ttlSeconds: config.ACCESS_TOKEN_TTL, now })
  app.decorate('auth', {
    clock: now,
    clients: clientRegistry(config.CLIENTS),
    origins: new OriginPolicy(config.CORS_ORIGINS),
    users,
    passwords,
    sessions,
    limits,
    accessTokens,
    grants: createGrants({ users, passwords, sessions, limits, accessTokens }),
    dpop: new TokenRequestProofs({
      tokenEndpoint: `${config.ISSUER}/oauth/token`,
      algorithms: config.DPOP_SIGNING_ALGS,
      maxAgeSeconds: config.DPOP_PROOF_MAX_AGE,
      clockSkewSeconds: config.CLOCK_SKEW,
      nonces: dpopNonces,
      replay: dpopReplay,
      now
    }),
    dpopReplay,
    dpopNonces,
    metrics: opts.metrics
  } satisfies Auth)
}, { name: 'baton-auth', fastify: '5.x', dependencies: ['baton-redis', 'baton-keyring', 'baton-revocation-feed'] })
