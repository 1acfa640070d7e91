import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Registry, Counter, Histogram, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's own Prometheus registry: two apps in one process never share counters. */
    metrics: Registry
  }
  interface FastifyContextConfig {
    /** Route label for metrics; routes without one are counted as unmatched. */
    metricsRoute?: string
  }
}

/** `/metrics` in Prometheus text format: process metrics and a request histogram by route and status. */
export const metricsPlugin = fp(async function metrics (app: FastifyInstance, opts: { prefix: string }) {
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

  app.get('/metrics', {
    schema: {
      description: 'Prometheus metrics in the text exposition format',
      tags: ['operations'],
      produces: [registry.contentType],
      response: { 200: Type.String() }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    reply.header('content-type', registry.contentType)
    return registry.metrics()
  })
}, { name: 'baton-metrics', fastify: '5.x' })

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
