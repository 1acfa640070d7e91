import Fastify, { type FastifyInstance } from 'fastify'
import formBody from '@fastify/formbody'
import { AccessLogController, clientErrorHandler, countVerifyFailures, errorHandlerPlugin, frameworkErrors, hardeningPlugin, healthPlugin, loggerOptions, logSourceOf, metricsPlugin, openApiPlugin, type RedisClient } from '@baton/service-kit'
import { createStaticKeySource } from '@baton/verifier'
import { verifierPlugin } from '@baton/verifier/fastify'
import { rotationPolicy, type Config } from './config.js'
import type { UserStore } from './core/accounts/user-store.js'
import { redisKeys } from './redis/keys.js'
import { AuthMetrics } from './observability/metrics.js'
import { redisPlugin } from './http/plugins/redis.js'
import { keyringPlugin } from './http/plugins/keyring.js'
import { revocationFeedPlugin } from './http/plugins/revocation-feed.js'
import { authPlugin } from './http/plugins/auth.js'
import { browserPlugin } from './http/plugins/browser.js'
import { authOpenApiOptions } from './http/plugins/openapi.js'
import tokenRoutes from './http/routes/token.js'
import userRoutes from './http/routes/users.js'
import sessionRoutes from './http/routes/sessions.js'
import wellKnownRoutes from './http/routes/well-known.js'
import revokeRoutes from './http/routes/revoke.js'
import introspectRoutes from './http/routes/introspect.js'
import metadataRoutes from './http/routes/metadata.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The validated configuration this app was built with. */
    config: Config
  }
}

export interface Deps {
  /** A Redis client the caller owns and closes (tests, embedding). */
  redis?: RedisClient
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  now?: () => number
  users?: UserStore
  /** pino destination, for tests that read the logs. */
  logStream?: NodeJS.WritableStream
}

// Every line names the service: under the root `start` both share one stdout.
const LOG_SOURCE = logSourceOf(new URL('../package.json', import.meta.url))

export type { Config } from './config.js'
export { loadConfig } from './config.js'

/** Builds the auth-service; `server.ts` listens, tests inject. */
export async function buildApp (config: Config, deps: Deps = {}): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now
  const logger = loggerOptions(config.LOG_LEVEL, LOG_SOURCE) as Record<string, unknown>
  const app = Fastify({
    logger: deps.logStream === undefined ? logger : { ...logger, stream: deps.logStream },
    bodyLimit: config.BODY_LIMIT,
    logController: new AccessLogController(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Answers Node and Fastify give before any hook runs still carry nosniff and Baton's error body.
    clientErrorHandler,
    frameworkErrors,
    // request.ip is what rate limits count: X-Forwarded-For is believed only from the configured proxies.
    trustProxy: config.TRUST_PROXY.length > 0 ? [...config.TRUST_PROXY] : false,
    // Strict types: `{"password": 12345678}` is a 400, not a string.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } }
  })

  app.decorate('config', config)
  // Only JSON and form bodies mean anything here; anything else is a 415.
  app.removeContentTypeParser('text/plain')
  await app.register(errorHandlerPlugin, { realm: 'baton' })
  await app.register(hardeningPlugin)
  // First: the document only sees routes registered after it.
  await app.register(openApiPlugin, authOpenApiOptions(config))
  await app.register(healthPlugin)
  await app.register(metricsPlugin, { prefix: 'baton_auth_', token: config.METRICS_TOKEN, port: config.METRICS_PORT, host: config.METRICS_HOST })
  const metrics = new AuthMetrics(app)
  await app.register(formBody, { bodyLimit: config.BODY_LIMIT })
  await app.register(redisPlugin, { target: config.REDIS, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT, client: deps.redis, metrics })
  const keys = redisKeys(config.REDIS_KEY_PREFIX)
  await app.register(keyringPlugin, {
    signingKeyPem: config.SIGNING_KEY,
    refreshTokenSecret: config.REFRESH_TOKEN_SECRET,
    signingKeysKey: keys.signingKeys,
    changesChannel: keys.signingKeysChanged,
    refreshTokenSecretKey: keys.refreshTokenSecret,
    now,
    rotation: rotationPolicy(config),
    metrics
  })
  await app.register(revocationFeedPlugin, {
    stream: keys.revocations,
    accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL,
    clockSkewSeconds: config.CLOCK_SKEW,
    now,
    metrics
  })
  await app.register(authPlugin, { config, keys, now, metrics, users: deps.users })
  await app.register(verifierPlugin, {
    keySource: createStaticKeySource(() => app.keyring.all().map((key) => ({ kid: key.kid, publicKey: key.publicKey }))),
    issuer: config.ISSUER,
    audience: config.AUDIENCE,
    clockSkew: config.CLOCK_SKEW,
    now,
    // The auth-service can afford one Redis read per request: its own
    // endpoints (and introspection) honour a revoked session or token at once.
    isRevoked: async (claims) => !await app.auth.sessions.isAccessTokenLive(claims.sub, claims.jti, claims.sid),
    // DPoP-bound tokens come with proofs made out to ISSUER + the route's path; their jtis, like
    // the token endpoint's, are kept in Redis, so a proof one instance took no other one takes.
    dpop: { algorithms: config.DPOP_SIGNING_ALGS, maxAge: config.DPOP_PROOF_MAX_AGE, replay: app.auth.dpopReplay, nonces: app.auth.dpopNonces },
    publicUrl: config.ISSUER,
    onRefused: countVerifyFailures(app)
  })

  await app.register(wellKnownRoutes)
  await app.register(metadataRoutes)
  await app.register(introspectRoutes)
  // The routes a page calls, in a context of their own: only they answer CORS and handle cookies.
  await app.register(async function pageRoutes (pages) {
    await pages.register(browserPlugin, { origins: app.auth.origins })
    await pages.register(tokenRoutes)
    await pages.register(revokeRoutes)
    await pages.register(userRoutes)
    await pages.register(sessionRoutes)
  })
  return app
}
