import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { createRedisClient, type RedisClient, type RedisTarget } from '@baton/service-kit'
import { defineScripts } from '../../redis/scripts.js'
import { RedisClock } from '../../redis/clock.js'
import { RedisBudget, runWithRedisBudget } from '../../redis/budget.js'
import { timeCommands } from '../../redis/timing.js'
import { writeProblem } from '../../redis/readiness.js'
import type { AuthMetrics } from '../../observability/metrics.js'

const CLOCK_SAMPLE_INTERVAL_MS = 5000

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
    /**
     * The Redis time (ms) after which a write sent now must not run; scripts that take it refuse later.
     * In a request, the moment its Redis budget runs out; throws the 503 once too little is left to send one.
     */
    redisDeadline: () => number
  }
}

export interface RedisPluginOptions {
  /** A URL, a cluster's seed nodes or Sentinels (see `readRedisTarget`). */
  target: RedisTarget | string
  commandTimeoutMs: number
  /** A client the caller owns (and closes); the plugin only defines its scripts on it. */
  client?: RedisClient | undefined
  /** Told every command's round trip. */
  metrics: AuthMetrics
}

/**
 * The Redis connection (one server, a Sentinel-watched master or a Redis
 * Cluster), set to fail fast by `createRedisClient`. A request that meets
 * Redis down, or a cluster mid-failover, gets a 503 within the timeout, and
 * the service recovers by itself once Redis is back. Each request gets one
 * budget of `commandTimeoutMs` for all its Redis calls (RedisBudget), and its
 * scripts' deadlines are where that budget ends.
 */
export const redisPlugin = fp(async function redis (app: FastifyInstance, opts: RedisPluginOptions) {
  // Auto-pipelining: commands issued in one tick share one socket write; under load a write per command cost more than the script.
  const client = opts.client ?? createRedisClient(opts.target, { commandTimeoutMs: opts.commandTimeoutMs, autoPipelining: true })
  defineScripts(client)
  // A getter: fastify's decorate type distributes over the Redis | Cluster union and refuses a plain value.
  app.decorate('redis', { getter: () => client })
  const clock = new RedisClock(opts.commandTimeoutMs)
  app.decorate('redisDeadline', () => clock.writeDeadline())
  // The rest of the request runs inside: fastify carries the context across body parsing.
  app.addHook('onRequest', (_request, _reply, done) => { runWithRedisBudget(new RedisBudget(opts.commandTimeoutMs), done) })
  const stopClock = clock.follow(client, CLOCK_SAMPLE_INTERVAL_MS)
  app.addHook('onClose', async () => { stopClock() })

  timeCommands(client, (label, seconds) => { opts.metrics.redisCommand(label, seconds) })

  let lastErrorLog = 0
  client.on('error', (error: Error) => {
    // Reconnect attempts fail every second while Redis is away: say so, not a flood.
    if (Date.now() - lastErrorLog > 10_000) {
      lastErrorLog = Date.now()
      app.log.warn({ err: { message: error.message, code: (error as NodeJS.ErrnoException).code } }, 'redis unavailable')
    }
  })
  client.on('ready', () => { app.log.info('redis ready') })

  app.addReadinessCheck('redis', async () => await writeProblem(client))

  if (opts.client === undefined) {
    // Start even when Redis is down: /readyz says so, requests get 503, and the reconnect loop keeps trying.
    client.connect().catch((error: Error) => { app.log.warn({ err: { message: error.message } }, 'redis not reachable at start') })
    app.addHook('onClose', async () => {
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
      else client.disconnect()
    })
  }
}, { name: 'baton-redis', fastify: '5.x', dependencies: ['baton-health'] })
