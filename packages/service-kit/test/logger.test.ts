import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { AccessLogController, loggerOptions, logSourceOf } from '../src/index.js'

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.c2VjcmV0.c2lnbmF0dXJl'

async function build (t: Test, level: string, source?: { service: string, version: string }): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({
    logger: { ...loggerOptions(level, source) as object, stream: { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } } },
    logController: new AccessLogController()
  })
  app.get('/me', async (request) => {
    request.log.info({ headers: request.headers, refresh_token: TOKEN }, 'handler line')
    return { ok: true }
  })
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/boom', async () => { throw new Error('boom') })
  t.teardown(async () => { await app.close() })
  return { app, lines }
}

const messages = (lines: Array<Record<string, unknown>>): unknown[] => lines.map((line) => line.msg)

t.test('info: one line per request, carrying the request, with no credential in any line', async (t) => {
  const { app, lines } = await build(t, 'info')
  const response = await app.inject({ url: `/me?access_token=${TOKEN}&x=1`, headers: { authorization: `Bearer ${TOKEN}`, 'user-agent': 'curl/8' } })
  t.equal(response.statusCode, 200)
  t.same(messages(lines), ['handler line', 'request completed'])
  const completed = lines[1]!
  t.match(completed, {
    level: 30,
    reqId: String,
    req: { method: 'GET', url: '/me?access_token=[redacted]&x=[redacted]', remoteAddress: '127.0.0.1', userAgent: 'curl/8' },
    res: { statusCode: 200 },
    responseTime: Number
  })
  t.equal(completed.reqId, lines[0]!.reqId, 'both lines name the same request')
  t.notMatch(JSON.stringify(lines), TOKEN, 'the token appears in no line: the handler line is still redacted')
})

t.test('a route logLevel above info silences the request line', async (t) => {
  const { app, lines } = await build(t, 'info')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
  t.same(lines, [])
})

t.test('debug adds the arrival line; an error is logged as Fastify logs it', async (t) => {
  const { app, lines } = await build(t, 'debug')
  await app.inject({ url: '/me' })
  t.same(messages(lines), ['incoming request', 'handler line', 'request completed'])
  lines.length = 0
  t.equal((await app.inject({ url: '/boom' })).statusCode, 500)
  t.ok(lines.some((line) => line.level === 50 && (line.err as { message?: string } | undefined)?.message === 'boom'), 'the error is logged at error level')
})

t.test('with a source, every line names the service and its version, access lines and errors included', async (t) => {
  const source = logSourceOf(new URL('../package.json', import.meta.url))
  t.same(source, { service: 'service-kit', version: '0.1.0' }, 'the package name without its scope')
  const { app, lines } = await build(t, 'info', { service: 'auth-service', version: '1.2.3' })
  app.log.info('plain line')
  await app.inject({ url: `/me?access_token=${TOKEN}`, headers: { authorization: `Bearer ${TOKEN}` } })
  await app.inject({ url: '/boom' })
  t.ok(lines.length >= 5, 'the plain line, the handler line, two access lines and the error')
  for (const line of lines) t.match(line, { service: 'auth-service', version: '1.2.3', pid: process.pid, hostname: String }, String(line.msg))
  t.notMatch(JSON.stringify(lines), TOKEN)
})
