import Fastify, { type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import { AccessLogController, clientErrorHandler, countVerifyFailures, errorHandlerPlugin, frameworkErrors, hardeningPlugin, healthPlugin, loggerOptions, logSourceOf, metricsPlugin, openApiPlugin } from '@baton/service-kit'
import { createJwksKeySource, type KeySource } from '@baton/verifier'
import { verifierPlugin } from '@baton/verifier/fastify'
import { RevocationFeed, withoutRevokedKeys } from '@baton/verifier/feed'
import type { Config } from './config.js'
import { jwksLoaderPlugin } from './plugins/jwks-loader.js'
import meRoutes from './routes/me.js'
import reportRoutes from './routes/reports.js'
import { resourceOpenApiOptions } from './plugins/openapi.js'
import { revocationFeedPlugin } from './plugins/revocation-feed.js'
import { createFeedRedisClient, FEED_BLOCK_MS } from './redis-client.js'

// Every line names the service: under the root `start` both share one stdout.
const LOG_SOURCE = logSourceOf(new URL('../package.json', import.meta.url))

export type { Config } from './config.js'
export { loadConfig } from './config.js'

export interface Deps {
  /** Keys from elsewhere; the app then neither fetches a key set nor closes this source. */
  keySource?: KeySource
  /** Milliseconds since the epoch; tests move it instead of sleeping. */
  now?: () => number
}

// The auth-service lets verifiers cache its key set this long (JWKS_MAX_AGE there, 5 minutes by default).
const JWKS_REFRESH_INTERVAL_MS = 300_000

/** Builds the resource-service; `server.ts` listens, tests inject. */
export async function buildApp (config: Config, deps: Deps = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config.LOG_LEVEL, LOG_SOURCE),
    bodyLimit: config.BODY_LIMIT,
    trustProxy: false,
    logController: new AccessLogController(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Answers Node and Fastify give before any hook runs still carry nosniff and Baton's error body.
    clientErrorHandler,
    frameworkErrors,
    // Pinned to the contract rather than to whatever --max-http-header-size says: larger gets 431.
    http: { maxHeaderSize: 16_384 }
  })

  await app.register(errorHandlerPlugin, { realm: 'baton' })
  await app.register(hardeningPlugin)
  // First: the document only sees routes registered after it.
  await app.register(openApiPlugin, resourceOpenApiOptions())
  await app.register(healthPlugin)
  if (config.CORS_ORIGINS.length > 0) {
    const allowed = new Set(config.CORS_ORIGINS)
    // An origin off the list gets no CORS header at all (and its preflight a 404), so the browser keeps the answer from its page.
    // No credentials: the API reads a bearer token, never a cookie.
    await app.register(cors, {
      origin: (origin, callback) => { callback(null, origin !== undefined && allowed.has(origin) ? origin : false) },
      methods: ['GET', 'HEAD'],
      allowedHeaders: ['authorization', 'dpop'],
      // DPoP-Nonce: a page's client reads the server's nonce from a use_dpop_nonce answer.
      exposedHeaders: ['www-authenticate', 'dpop-nonce'],
      maxAge: 600
    })
  }
  await app.register(metricsPlugin, { prefix: 'baton_resource_', token: config.METRICS_TOKEN, port: config.METRICS_PORT, host: config.METRICS_HOST })

  let keySource = deps.keySource
  if (keySource === undefined) {
    const jwks = createJwksKeySource({
      jwksUrl: config.JWKS_URL,
      minRefetchIntervalMs: config.JWKS_MIN_REFETCH_INTERVAL * 1000,
      log: app.log,
      ...(deps.now === undefined ? {} : { now: deps.now })
    })
    await app.register(jwksLoaderPlugin, { source: jwks, refreshIntervalMs: JWKS_REFRESH_INTERVAL_MS })
    keySource = jwks
  }
  const keys = keySource
  app.addReadinessCheck('keys', () => keys.ready() ? undefined : 'verification keys are not loaded yet')

  // Only with REDIS_URL: without it the service opens no Redis connection and refuses revoked tokens at expiry.
  const redisTarget = config.REDIS
  const feed = redisTarget === undefined
    ? undefined
    : new RevocationFeed({
      client: createFeedRedisClient(redisTarget),
      ownsClient: true,
      keyPrefix: config.REDIS_KEY_PREFIX,
      clockSkew: config.CLOCK_SKEW,
      blockMs: FEED_BLOCK_MS,
      log: app.log,
      ...(deps.now === undefined ? {} : { now: deps.now })
    })
  if (feed !== undefined) await app.register(revocationFeedPlugin, { feed })

  await app.register(verifierPlugin, {
    // A key the feed says leaked is unknown from then on, for new and cached tokens alike.
    keySource: feed === undefined ? keySource : withoutRevokedKeys(keySource, feed.list),
    issuer: config.ISSUER,
    audience: config.AUDIENCE,
    clockSkew: config.CLOCK_SKEW,
    ...(deps.now === undefined ? {} : { now: deps.now }),
    // Synchronous and in memory: a revoked token costs no Redis call, and neither does a valid one.
    ...(feed === undefined ? {} : { isRevoked: feed.isRevoked }),
    // Bearer and DPoP-bound tokens both; each instance remembers the proofs it has seen.
    dpop: true,
    ...(config.PUBLIC_URL === undefined ? {} : { publicUrl: config.PUBLIC_URL }),
    onRefused: countVerifyFailures(app)
  })

  await app.register(async function protectedApi (api) {
    api.addHook('onRequest', api.authenticate)
    // Answers depend on who asks: no cache may keep or share them.
    // A callback hook, not an async one: it runs on every response, and a promise per response showed in profiles.
    api.addHook('onSend', (_request, reply, payload, done) => { reply.header('cache-control', 'no-store'); done(null, payload) })
    await api.register(meRoutes)
    await api.register(reportRoutes)
  })

  return app
}
