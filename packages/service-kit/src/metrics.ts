import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import { BatonError, ErrorResponseSchema } from '@baton/tokens'
import { bearerChallenge } from './error-handler.js'
import { NOSNIFF, clientErrorHandler } from './hardening.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's own Prometheus registry: two apps in one process never share counters. */
    metrics: Registry
    /** Where the separate metrics listener (METRICS_PORT) listens once the app is ready; undefined without one. */
    metricsAddress: () => AddressInfo | undefined
  }
  interface FastifyContextConfig {
    /** Route label for metrics; routes without one are counted as unmatched. */
    metricsRoute?: string
  }
}

export interface MetricsOptions {
  prefix: string
  /** When set, a scrape must send `Authorization: Bearer <token>`. */
  token?: string | undefined
  /** When set, `/metrics` is served only by a listener of its own on this port (0: any free one), not by the app. */
  port?: number | undefined
  host?: string | undefined
}

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest()

/** Why a scrape is refused, or undefined when it may read; digests of equal length keep the comparison constant-time. */
function scrapeRefusal (authorization: string | undefined, tokenDigest: Buffer | undefined): BatonError | undefined {
  if (tokenDigest === undefined) return undefined
  const match = authorization === undefined ? null : /^Bearer ([\x21-\x7E]+)$/i.exec(authorization)
  if (match === null) return new BatonError('BATON_TOKEN_MISSING', 'metrics need the bearer token the service was configured with')
  return timingSafeEqual(sha256(match[1]!), tokenDigest) ? undefined : new BatonError('BATON_INVALID_TOKEN', 'not the metrics token')
}

/**
 * `/metrics` in Prometheus text format: process metrics and a request
 * histogram by route and status. Public on the app's port by default; an
 * operator may ask for a bearer token, a port of its own, or both.
 */
export const metricsPlugin = fp(async function metrics (app: FastifyInstance, opts: MetricsOptions) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: opts.prefix })
  app.decorate('metrics', registry)

  const requests = new Histogram({
    name: `${opts.prefix}http_request_duration_seconds`,
    help: 'HTTP request duration by route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry]
  })

  app.addHook('onResponse', async (request, reply) => {
    // The matched URL pattern, never the raw URL: labels must stay few.
    const route = request.routeOptions.url ?? 'unmatched'
    requests.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })

  const tokenDigest = opts.token === undefined ? undefined : sha256(opts.token)
  let server: Server | undefined
  app.decorate('metricsAddress', () => {
    const address = server?.address()
    return typeof address === 'object' && address !== null ? address : undefined
  })

  if (opts.port !== undefined) {
    const port = opts.port
    const listener = createServer((request, response) => { void serveScrape(registry, tokenDigest, request, response) })
    listener.on('clientError', (error: NodeJS.ErrnoException, socket) => { clientErrorHandler.call(app, error, socket as Socket) })
    server = listener
    // Ready, not listen: a port that is taken stops start-up instead of leaving the service without metrics.
    app.addHook('onReady', async () => {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject)
        listener.listen({ port, host: opts.host ?? '127.0.0.1' }, () => { listener.off('error', reject); resolve() })
      })
    })
    app.addHook('onClose', async () => {
      if (!listener.listening) return
      listener.closeAllConnections()
      await new Promise((resolve) => listener.close(resolve))
    })
    return
  }

  app.get('/metrics', {
    schema: {
      description: tokenDigest === undefined
        ? 'Prometheus metrics in the text exposition format'
        : 'Prometheus metrics in the text exposition format; needs `Authorization: Bearer <METRICS_TOKEN>`',
      tags: ['operations'],
      produces: [registry.contentType],
      response: { 200: Type.String(), ...(tokenDigest === undefined ? {} : { 401: ErrorResponseSchema }) }
    },
    logLevel: 'warn',
    onRequest: (request, _reply, done) => { done(scrapeRefusal(request.headers.authorization, tokenDigest)) }
  }, async (_request, reply) => {
    reply.header('content-type', registry.contentType)
    return registry.metrics()
  })
}, { name: 'baton-metrics', fastify: '5.x' })

/** The whole of the separate metrics listener: `GET /metrics`, and nothing else. */
async function serveScrape (registry: Registry, tokenDigest: Buffer | undefined, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?')[0]
  const refusal = path !== '/metrics'
    ? new BatonError('BATON_NOT_FOUND', 'only /metrics is served here')
    : request.method !== 'GET' && request.method !== 'HEAD'
      ? new BatonError('BATON_METHOD_NOT_ALLOWED', 'only GET')
      : scrapeRefusal(request.headers.authorization, tokenDigest)
  if (refusal !== undefined) {
    const body = JSON.stringify(refusal.error === undefined ? { error_description: refusal.message } : { error: refusal.error, error_description: refusal.message })
    response.writeHead(refusal.statusCode, {
      ...NOSNIFF,
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      ...(refusal.statusCode === 401 ? { 'www-authenticate': bearerChallenge(refusal, 'baton') } : {}),
      ...(refusal.statusCode === 405 ? { allow: 'GET, HEAD' } : {})
    })
    response.end(body)
    return
  }
  try {
    const text = await registry.metrics()
    response.writeHead(200, { ...NOSNIFF, 'content-type': registry.contentType })
    response.end(request.method === 'HEAD' ? undefined : text)
  } catch {
    response.writeHead(500, { ...NOSNIFF, 'content-type': 'application/json; charset=utf-8' })
    response.end(JSON.stringify({ error: 'server_error', error_description: 'internal error' }))
  }
}

/** A counter registered on the app's registry. */
export function counter<L extends string> (app: FastifyInstance, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [app.metrics] })
}

/** Counts the access-token verifier's refusals in `baton_verify_failures_total{reason}`: pass it as the verifier's `onRefused`. */
export function countVerifyFailures (app: FastifyInstance): (refusal: { reason: string }) => void {
  const failures = counter(app, 'baton_verify_failures_total', 'Requests refused by the access-token verifier, by reason', ['reason'])
  return (refusal) => { failures.inc({ reason: refusal.reason }) }
}

/** A histogram registered on the app's registry, in seconds. */
export function histogram<L extends string> (app: FastifyInstance, name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
  return new Histogram({ name, help, labelNames, buckets, registers: [app.metrics] })
}

/**
 * A gauge registered on the app's registry whose values `collect` computes
 * afresh at every scrape, one per label set, so it follows the clock rather
 * than the last update.
 */
export function gauge<L extends string> (app: FastifyInstance, name: string, help: string, labelNames: readonly L[], collect: () => Iterable<readonly [Record<L, string>, number]>): Gauge<L> {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [app.metrics],
    collect () {
      this.reset()
      for (const [labels, value] of collect()) this.set(labels as Partial<Record<L, string | number>>, value)
    }
  })
}

/**
 * Caches a metric's children by label values, so a hot path's `inc()` or
 * `observe()` costs no label hashing: `const byRoute = labelled(histogram); byRoute('a').observe(1)`.
 */
export function labelled<T> (metric: { labels: (...values: string[]) => T }): (...values: string[]) => T {
  const cache = new Map<string, T>()
  return (...values) => {
    const key = values.join('\u0000')
    let child = cache.get(key)
    if (child === undefined) {
      child = metric.labels(...values)
      cache.set(key, child)
    }
    return child
  }
}
