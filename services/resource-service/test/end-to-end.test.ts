import t from 'tap'
import { freePort, startRedis } from '@baton/test-redis'
import { buildApp as buildAuth, loadConfig as loadAuthConfig } from '@baton/auth-service'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../src/app.js'
import { BARE_CHALLENGES } from './helper.js'

// Both services on real sockets, the resource-service knowing the
// auth-service only by its JWKS URL: the README's walk-through, asserted.
t.test('register, log in, call the API, refresh, replay: end to end', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })

  // The issuer is what tokens carry, so the auth-service's port is fixed up front.
  const authPort = String(await freePort())
  const authApp = await buildAuth(loadAuthConfig({
    REDIS_URL: redis.url, LOG_LEVEL: 'silent', ISSUER: `http://127.0.0.1:${authPort}`, DEFAULT_SCOPES: 'profile reports:read', REFRESH_REUSE_GRACE: '1s'
  }))
  t.teardown(async () => { await authApp.close() })
  await authApp.listen({ host: '127.0.0.1', port: Number(authPort) })

  const resource = await buildResource(loadResourceConfig({ ISSUER: `http://127.0.0.1:${authPort}`, LOG_LEVEL: 'silent' }))
  t.teardown(async () => { await resource.close() })
  const api = await resource.listen({ host: '127.0.0.1', port: 0 })

  for (let i = 0; i < 50 && (await fetch(`${api}/readyz`)).status !== 200; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal((await fetch(`${api}/readyz`)).status, 200, 'the resource-service loaded the auth-service\'s keys')

  const post = async (path: string, body: Record<string, string>, form = false): Promise<Response> => await fetch(`http://127.0.0.1:${authPort}${path}`, {
    method: 'POST',
    headers: { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' },
    body: form ? new URLSearchParams(body).toString() : JSON.stringify(body)
  })

  const registered = await post('/users', { username: 'ada', password: 'correct horse battery staple' })
  t.equal(registered.status, 201)

  const login = await post('/oauth/token', { grant_type: 'password', username: 'ada', password: 'correct horse battery staple' }, true)
  t.equal(login.status, 200)
  t.equal(login.headers.get('cache-control'), 'no-store')
  const tokens = await login.json() as { access_token: string, refresh_token: string, scope: string }

  const me = await fetch(`${api}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
  t.equal(me.status, 200)
  t.match(await me.json(), { sub: /^[A-Za-z0-9_-]{22}$/, username: 'ada', scope: 'profile reports:read', sid: /^[A-Za-z0-9_-]{22}$/, exp: Number })
  t.equal((await fetch(`${api}/reports`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 200)

  const narrow = await (await post('/oauth/token', { grant_type: 'password', username: 'ada', password: 'correct horse battery staple', scope: 'profile' })).json() as { access_token: string }
  const forbidden = await fetch(`${api}/reports`, { headers: { authorization: `Bearer ${narrow.access_token}` } })
  t.equal(forbidden.status, 403)
  t.match(forbidden.headers.get('www-authenticate'), /error="insufficient_scope"/)

  const refreshed = await post('/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, true)
  t.equal(refreshed.status, 200)
  const next = await refreshed.json() as { access_token: string, refresh_token: string }
  t.equal((await fetch(`${api}/me`, { headers: { authorization: `Bearer ${next.access_token}` } })).status, 200)

  await new Promise((resolve) => setTimeout(resolve, 1100))
  const replay = await post('/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, true)
  t.equal(replay.status, 400)
  t.match(await replay.json(), { error: 'invalid_grant', error_description: /revoked/ })
  const dead = await post('/oauth/token', { grant_type: 'refresh_token', refresh_token: next.refresh_token }, true)
  t.equal(dead.status, 400, 'the legitimate successor died with its family')

  // Verification is local: with Redis gone the API still serves valid tokens.
  const fresh = await (await post('/oauth/token', { grant_type: 'password', username: 'ada', password: 'correct horse battery staple' })).json() as { access_token: string }
  redis.kill('SIGKILL')
  t.equal((await fetch(`${api}/me`, { headers: { authorization: `Bearer ${fresh.access_token}` } })).status, 200, 'the resource-service keeps verifying without Redis')
  t.equal((await post('/oauth/token', { grant_type: 'password', username: 'ada', password: 'correct horse battery staple' })).status, 503, 'while the auth-service says it cannot issue')

  const noToken = await fetch(`${api}/me`)
  t.equal(noToken.status, 401)
  t.equal(noToken.headers.get('www-authenticate'), BARE_CHALLENGES)
})
