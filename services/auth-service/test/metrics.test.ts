import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { setup, register, login, refresh, bearer } from './helper.js'

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
    ['baton_auth_refreshes_total', { outcome: 'race_absorbed' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'reuse_detected' }, 1],
    ['baton_auth_refreshes_total', { outcome: 'invalid' }, 1],
    ['baton_auth_refresh_races_absorbed_total', {}, 1],
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
