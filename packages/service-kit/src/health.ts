import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

/** A readiness probe: resolves when its dependency is usable, throws (or returns a reason) when not. */
export type ReadinessCheck = () => Promise<string | undefined> | string | undefined

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers a named check that `/readyz` runs on every call. */
    addReadinessCheck: (name: string, check: ReadinessCheck) => void
  }
}

const ProbeSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Each readiness check: `ok` or why it failed' }))
})

/** `/healthz` answers while the process runs; `/readyz` only while every registered check passes. */
export const healthPlugin = fp(async function health (app: FastifyInstance, opts: { checkTimeoutMs?: number }) {
  const checks = new Map<string, ReadinessCheck>()
  const timeoutMs = opts.checkTimeoutMs ?? 1000
  app.decorate('addReadinessCheck', (name: string, check: ReadinessCheck) => { checks.set(name, check) })

  app.get('/healthz', {
    schema: { description: 'Liveness: 200 while the process runs', tags: ['operations'], response: { 200: ProbeSchema } },
    logLevel: 'warn'
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    schema: {
      description: 'Readiness: 200 while every dependency check passes, else 503 naming the failing ones',
      tags: ['operations'],
      response: { 200: ProbeSchema, 503: ProbeSchema }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    const results: Record<string, string> = {}
    let ready = true
    await Promise.all([...checks].map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined
      try {
        const failure = await Promise.race([
          Promise.resolve().then(check),
          new Promise<string>((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timed out') })
        ])
        results[name] = failure ?? 'ok'
        if (failure !== undefined) ready = false
      } catch (error) {
        results[name] = error instanceof Error ? error.message.slice(0, 200) : 'failed'
        ready = false
      } finally {
        clearTimeout(timer)
      }
    }))
    reply.header('cache-control', 'no-store')
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: results })
  })
}, { name: 'baton-health', fastify: '5.x' })
