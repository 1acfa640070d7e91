import t from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp, loadConfig } from '../src/app.js'
import { setup, register, login, refresh, bearer } from './helper.js'
import { rawRequest, statusOf } from '../../../packages/verifier/test/helper.js'

/** The value of one sample in the Prometheus text, or undefined when it is not exposed. */
async function sample (app: FastifyInstance, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = (await app.inject('/metrics')).body
  const wanted = Object.entries(labels)
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (match?.[1] !== name) continue
    const present = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
    if (wanted.every(([key, value]) => present.get(key) === value) && present.size === wanted.length) return Number(match[3])
  }
  return undefined
}

t.test('counters follow a flow: logins, refreshes, races, reuse, revocations, rate limits', async (t) => {
  const clients = JSON.stringify([
    { client_id: 'reporting', client_secret: 'reporting-secret-0123456789', grant_types: ['client_credentials'], scope: 'reports:read' }
  ])
  const { app, clock } = await setup(t, { CLIENTS: clients, RATE_LIMIT_ACCOUNT_FAILURES: '2', LOG_LEVEL: 'silent' })
  const user = await register(app, 'metered')

  const first = await login(app, 'metered', user.password)
  const wrong = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'metered', password: 'not the password' } })
  t.equal(wrong.statusCode, 400)
  await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'nobody-here', password: 'whatever123' } })

  // Rotate, then retry the spent token at once (a lost response): the same successor.
  const rotated = await refresh(app, first.refresh_token)
  t.equal(rotated.statusCode, 200)
  const retried = await refresh(app, first.refresh_token)
  t.equal(retried.json().refresh_token, rotated.json().refresh_token)
  // After the grace window the spent token is theft: the session ends.
  clock.advance(11_000)
  t.equal((await refresh(app, first.refresh_token)).statusCode, 400)
  t.equal((await refresh(app, 'not-a-token')).statusCode, 400)

  const second = await login(app, 'metered', user.password)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: second.access_token } })).statusCode, 200)
  const third = await login(app, 'metered', user.password)
  t.equal((await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(third.access_token) })).statusCode, 204)

  t.equal((await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { authorization: `Basic ${Buffer.from('reporting:reporting-secret-0123456789').toString('base64')}` },
    payload: { grant_type: 'client_credentials' }
  })).statusCode, 200)

  // Two failures lock the account: the next attempt, right password or not, is a 429.
  for (let i = 0; i < 2; i++) await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'metered', password: 'still wrong!' } })
  t.equal((await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'metered', password: user.password } })).statusCode, 429)

  // A bad bearer token at the auth-service's own protected routes.
  t.equal((await app.inject({ url: '/sessions', headers: bearer('a.b.c') })).statusCode, 401)
  t.equal((await app.inject({ url: '/sessions', headers: bearer(first.access_token) })).statusCode, 401, 'the reused session is gone')

  const expected: Array<[string, Record<string, string>, number]> = [
    ['baton_auth_logins_total', { outcome: 'succeeded' }, 3],
    ['baton_auth_logins_total', { outcome: 'wrong_password' }, 3],
    ['baton_auth_logins_total', { outcome: 'unknown_user' }, 1],
    ['baton_auth_logins_total', { outcome: 'rate_limited' }, 1],
    ['baton_auth_rate_limited_total', { action: 'login', limit: 'account_failures' }, 1],
    ['baton_auth_tokens_issued_total', { grant: 'password', token_type: 'access_token' }, 3],
    ['baton_auth_tokens_issued_total', { grant: 'password', token_type: 'refresh_token' }, 3],
    // The retry got a fresh access token but the successor it was already given.
    ['baton_auth_tokens_issued_total', { grant: 'refresh_token', token_type: 'access_token' }, 2],
    ['baton_auth_tokens_issued_total', { grant: 'refresh_token', token_type: 'refresh_token' }, 1],
    ['baton_auth_tokens_issued_total', { grant: 'client_credentials', token_type: 'access_token' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'rotated' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'grace_retry' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'reuse_detected' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'invalid' }, 1],
    ['baton_auth_refresh_grace_retries_total', {}, 1],
    ['baton_auth_refresh_reuse_detected_total', {}, 1],
    ['baton_auth_revocations_total', { kind: 'session', reason: 'refresh_token_reuse' }, 1],
    // The second and third sessions; the first was already gone.
    ['baton_auth_revocations_total', { kind: 'session', reason: 'logout_everywhere' }, 2],
    ['baton_auth_revocations_total', { kind: 'access_token', reason: 'revocation_endpoint' }, 1],
    ['baton_verify_failures_total', { reason: 'malformed' }, 1],
    ['baton_verify_failures_total', { reason: 'rejected' }, 1]
  ]
  for (const [name, labels, value] of expected) {
    t.equal(await sample(app, name, labels), value, `${name}${JSON.stringify(labels)}`)
  }
  t.equal(await sample(app, 'baton_auth_refreshes_total', { outcome: 'expired' }), undefined, 'no outcome that did not happen')
})

t.test('Redis latency by command and script; process metrics; probes', async (t) => {
  const { app } = await setup(t, { LOG_LEVEL: 'silent' })
  const user = await register(app, 'timed')
  const tokens = await login(app, 'timed', user.password)
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200)
  const text = (await app.inject('/metrics')).body
  t.match(text, /# TYPE baton_auth_redis_command_duration_seconds histogram/)
  for (const command of ['create-session', 'rotate-refresh', 'rate-limit']) {
    const count = await sample(app, 'baton_auth_redis_command_duration_seconds_count', { command })
    t.ok(count !== undefined && count >= 1, `${command} observed (${count})`)
  }
  const sessionWrites = await sample(app, 'baton_auth_redis_command_duration_seconds_count', { command: 'rotate-refresh' })
  t.equal(sessionWrites, 1, 'one round trip per refresh')
  t.notMatch(text, /command="evalsha"/, 'every script is named')
  t.match(text, /^baton_auth_process_cpu_user_seconds_total /m)
  t.match(text, /^baton_auth_nodejs_eventloop_lag_seconds /m)
  t.match(text, /^baton_auth_http_request_duration_seconds_count\{method="POST",route="\/oauth\/token",status="200"\} 2$/m)

  const health = await app.inject('/healthz')
  t.same([health.statusCode, health.json()], [200, { status: 'ok' }])
  const ready = await app.inject('/readyz')
  t.same([ready.statusCode, ready.json()], [200, { status: 'ok', checks: { redis: 'ok', keys: 'ok' } }])
  t.equal(ready.headers['cache-control'], 'no-store')
})

const METRICS_TOKEN = 'scrape-secret-0123456789abcdef'

t.test('METRICS_TOKEN: /metrics answers only a scrape with the bearer token, and the token is never logged', async (t) => {
  const { app, logs } = await setup(t, { METRICS_TOKEN, LOG_LEVEL: 'trace' })
  const scrape = async (authorization?: string) => await app.inject({ url: '/metrics', headers: authorization === undefined ? {} : { authorization } })

  const anonymous = await scrape()
  t.equal(anonymous.statusCode, 401, 'no credentials: 401')
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="baton"', 'with a bare challenge')
  t.notMatch(anonymous.body, /baton_auth_/, 'and no metric')
  for (const wrong of [`Bearer ${METRICS_TOKEN}x`, `Bearer ${METRICS_TOKEN.slice(0, -1)}`, `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}`, 'Bearer', `Bearer ${METRICS_TOKEN} extra`]) {
    const response = await scrape(wrong)
    t.equal(response.statusCode, 401, `${wrong.slice(0, 12)}…: 401`)
    t.notMatch(response.body, /baton_auth_/)
  }
  const scraped = await scrape(`Bearer ${METRICS_TOKEN}`)
  t.equal(scraped.statusCode, 200, 'the right token: 200')
  t.match(scraped.body, /^baton_auth_http_request_duration_seconds_count\{method="GET",route="\/metrics",status="401"\} \d+$/m, 'the refused scrapes are counted like any request')
  t.equal((await scrape(`bearer ${METRICS_TOKEN}`)).statusCode, 200, 'the scheme is case-insensitive (RFC 7235)')
  t.equal((await app.inject('/healthz')).statusCode, 200, 'the probes stay open')
  t.equal((await app.inject('/readyz')).statusCode, 200)

  t.ok(logs().length > 0, 'requests were logged')
  t.notOk(logs().includes(METRICS_TOKEN.slice(0, 16)), 'the token is in no log line')
  t.notOk(scraped.body.includes(METRICS_TOKEN.slice(0, 16)), 'nor in the metrics')
})

t.test('METRICS_PORT: metrics move to a listener of their own; the public port no longer serves them', async (t) => {
  const { app } = await setup(t, { METRICS_PORT: '0', METRICS_TOKEN, LOG_LEVEL: 'silent' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const main = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const metricsAddress = app.metricsAddress()
  t.ok(metricsAddress, 'the metrics listener is up once the app is ready')
  const metrics = `http://127.0.0.1:${metricsAddress!.port}`
  t.not(metricsAddress!.port, (app.server.address() as AddressInfo).port)

  const onMain = await fetch(`${main}/metrics`, { headers: bearer(METRICS_TOKEN) })
  t.equal(onMain.status, 404, 'the public port answers 404 for /metrics, even with the token')
  t.notMatch(await onMain.text(), /baton_auth_/)
  t.equal((await fetch(`${main}/healthz`)).status, 200, 'the probes stay on the public port')

  const refused = await fetch(`${metrics}/metrics`)
  t.equal(refused.status, 401, 'the token still applies on the metrics port')
  t.equal(refused.headers.get('www-authenticate'), 'Bearer realm="baton"')
  t.equal(refused.headers.get('x-content-type-options'), 'nosniff')
  const wrong = await fetch(`${metrics}/metrics`, { headers: bearer('not-the-scrape-token-0000') })
  t.equal(wrong.status, 401)
  t.match(await wrong.json(), { error: 'invalid_token' })
  const scraped = await fetch(`${metrics}/metrics`, { headers: bearer(METRICS_TOKEN) })
  t.equal(scraped.status, 200)
  t.match(scraped.headers.get('content-type'), /^text\/plain/)
  t.equal(scraped.headers.get('x-content-type-options'), 'nosniff')
  t.match(await scraped.text(), /^baton_auth_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 1$/m, 'the public port\'s traffic is what it reports')

  for (const [path, method, status] of [['/', 'GET', 404], ['/healthz', 'GET', 404], ['/metrics/x', 'GET', 404], ['/metrics', 'POST', 405]] as const) {
    const response = await fetch(`${metrics}${path}`, { method, headers: bearer(METRICS_TOKEN) })
    t.equal(response.status, status, `${method} ${path} on the metrics port: ${status}`)
    t.equal(response.headers.get('x-content-type-options'), 'nosniff')
  }

  const garbage = await rawRequest(metricsAddress!.port, 'not http at all\r\n\r\n')
  t.equal(statusOf(garbage), 400, 'garbage on the metrics port: 400')
  t.match(garbage, /\r\nx-content-type-options: nosniff\r\n/i, 'with nosniff, as on the public port')

  await app.close()
  await t.rejects(fetch(`${metrics}/metrics`), 'closing the app closes the metrics listener')
})

t.test('METRICS_PORT: a port that is taken stops start-up', async (t) => {
  const { app: first } = await setup(t, { METRICS_PORT: '0', LOG_LEVEL: 'silent' })
  const taken = String(first.metricsAddress()!.port)
  const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', METRICS_PORT: taken, LOG_LEVEL: 'silent' })
  const second = await buildApp(config)
  await t.rejects(second.ready(), { code: 'EADDRINUSE' })
  await second.close()
})

t.test('metrics settings are checked at start-up', async (t) => {
  t.throws(() => loadConfig({ METRICS_TOKEN: 'short' }), /^METRICS_TOKEN /)
  t.throws(() => loadConfig({ METRICS_TOKEN: 'has a space in it 0123456789' }), /^METRICS_TOKEN /)
  t.throws(() => loadConfig({ METRICS_PORT: '3001' }), /^METRICS_PORT must differ from PORT/)
  t.throws(() => loadConfig({ METRICS_PORT: 'x' }), /^METRICS_PORT /)
  t.match(loadConfig({ HOST: '0.0.0.0' }), { METRICS_TOKEN: undefined, METRICS_PORT: undefined, METRICS_HOST: '0.0.0.0' }, 'by default metrics stay public on PORT')
})
