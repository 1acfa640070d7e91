import { spawn } from 'node:child_process'
import { channel } from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { startRedis, type TestRedis } from '@baton/test-redis'
import { revocationStreamKey } from '@baton/tokens'
import {
  PASSWORD, cuttableLink, eventually, startAuth, startResource, type AuthService, type ResourceService, type Tokens
} from './feed-helper.js'
import { generateTestKey, startJwksServer, testClock } from './helper.js'

/** Whether the resource-service refuses the token as revoked, within the deadline. */
async function refused (resource: ResourceService, accessToken: string, timeoutMs = 3000): Promise<boolean> {
  return await eventually(async () => {
    const { status, challenge } = await resource.me(accessToken)
    return status === 401 && /error="invalid_token"/.test(challenge ?? '') && /revoked/.test(challenge ?? '')
  }, timeoutMs)
}

async function accepted (resource: ResourceService, accessToken: string): Promise<boolean> {
  return (await resource.me(accessToken)).status === 200
}

t.test('every kind of revocation is refused at the resource-service; unrelated tokens still pass', async (t) => {
  const auth = await startAuth(t, { MAX_SESSIONS_PER_USER: '3' })
  const resource = await startResource(t, auth, { REDIS_URL: auth.redis.url })
  await resource.ready()
  await auth.register('ada')
  await auth.register('bob')
  const bob = await auth.login('bob')
  const bystander = await auth.login('ada')

  await t.test('logout: the revocation endpoint with a refresh token', async (t) => {
    const session = await auth.login('ada')
    t.ok(await accepted(resource, session.access_token))
    t.equal((await auth.post('/oauth/revoke', { token: session.refresh_token })).status, 200)
    t.ok(await refused(resource, session.access_token), '401 invalid_token')
    t.ok(await accepted(resource, bystander.access_token), 'the same user\'s other session still passes')
  })

  await t.test('DELETE /sessions/:id', async (t) => {
    const session = await auth.login('ada')
    const sid = (await resource.app.inject({ url: '/me', headers: { authorization: `Bearer ${session.access_token}` } })).json<{ sid: string }>().sid
    t.equal((await auth.send('DELETE', `/sessions/${sid}`, bystander.access_token)).status, 204)
    t.ok(await refused(resource, session.access_token))
    t.ok(await accepted(resource, bystander.access_token))
  })

  await t.test('a spent refresh token comes back: the whole family', async (t) => {
    const session = await auth.login('ada')
    const refreshed = await (await auth.post('/oauth/token', { grant_type: 'refresh_token', refresh_token: session.refresh_token })).json() as { access_token: string }
    t.equal((await auth.post('/oauth/token', { grant_type: 'refresh_token', refresh_token: session.refresh_token })).status, 400)
    t.ok(await refused(resource, refreshed.access_token), 'the successor\'s access token')
    t.ok(await refused(resource, session.access_token), 'and the first one')
    t.ok(await accepted(resource, bystander.access_token))
  })

  await t.test('eviction beyond MAX_SESSIONS_PER_USER', async (t) => {
    await auth.register('eve')
    const oldest = await auth.login('eve')
    const kept = [await auth.login('eve'), await auth.login('eve')]
    await auth.login('eve')
    t.ok(await refused(resource, oldest.access_token), 'the least recently used session is refused')
    for (const session of kept) t.ok(await accepted(resource, session.access_token))
  })

  await t.test('RFC 7009 revocation of one access token', async (t) => {
    const session = await auth.login('ada')
    const sibling = await (await auth.post('/oauth/token', { grant_type: 'refresh_token', refresh_token: session.refresh_token })).json() as { access_token: string }
    t.equal((await auth.post('/oauth/revoke', { token: session.access_token })).status, 200)
    t.ok(await refused(resource, session.access_token))
    t.ok(await accepted(resource, sibling.access_token), 'another token of the same session still passes')
  })

  await t.test('password change keeping the current session', async (t) => {
    await auth.register('cyd')
    const current = await auth.login('cyd')
    const other = await auth.login('cyd')
    t.equal((await auth.post('/users/me/password', { current_password: PASSWORD, new_password: 'another long passphrase', keep_current_session: true }, current.access_token)).status, 204)
    t.ok(await refused(resource, other.access_token), 'the other session is refused')
    t.ok(await accepted(resource, current.access_token), 'the kept session\'s tokens still pass')
    const again = await auth.login('cyd', 'another long passphrase')
    t.equal((await auth.post('/users/me/password', { current_password: 'another long passphrase', new_password: PASSWORD }, again.access_token)).status, 204)
    t.ok(await refused(resource, again.access_token), 'without keep_current_session the current session ends too')
    t.ok(await refused(resource, current.access_token))
  })

  await t.test('DELETE /sessions: log out everywhere', async (t) => {
    const sessions = [await auth.login('ada'), await auth.login('ada')]
    t.equal((await auth.send('DELETE', '/sessions', sessions[0]!.access_token)).status, 204)
    for (const session of [...sessions, bystander]) t.ok(await refused(resource, session.access_token))
    t.ok(await accepted(resource, bob.access_token), 'another user\'s token still passes')
    const next = await auth.login('ada')
    t.ok(await accepted(resource, next.access_token), 'a login after it passes')
  })

  t.equal(await resource.metric('baton_resource_revocation_feed_connected'), 1)
  t.equal(await resource.metric('baton_resource_revocation_feed_gaps_total', 'reason="entries_missed"'), undefined, 'no gap')
  t.ok((await resource.metric('baton_resource_revocation_feed_lag_seconds_count') ?? 0) >= 7, 'every event was applied')
  const published = Number(/baton_auth_revocation_feed_events_total\{outcome="published"\} (\d+)/.exec(await (await fetch(`${auth.url}/metrics`)).text())?.[1])
  t.ok(published >= 7, 'the auth-service counts what it published')
})

t.test('a Redis user that may only read the stream is all the resource-service needs', async (t) => {
  const auth = await startAuth(t)
  const admin = new Redis(auth.redis.url)
  t.teardown(() => { admin.disconnect() })
  await admin.call('ACL', 'SETUSER', 'baton-verifier', 'on', '>feed-secret', 'resetkeys', `%R~${revocationStreamKey('baton:')}`, 'resetchannels',
    '-@all', '+xread', '+xinfo|stream', '+info', '+ping', '+client|setname')
  const url = `redis://baton-verifier:feed-secret@127.0.0.1:${auth.redis.port}`
  const resource = await startResource(t, auth, { REDIS_URL: url })
  await resource.ready()
  await auth.register('ada')
  const session = await auth.login('ada')
  t.equal((await auth.post('/oauth/revoke', { token: session.refresh_token })).status, 200)
  t.ok(await refused(resource, session.access_token))

  const verifier = new Redis(url)
  t.teardown(() => { verifier.disconnect() })
  await t.rejects(verifier.get('baton:signing-keys'), /NOPERM/, 'while the private signing key stays out of its reach')
  await t.rejects(verifier.xadd(revocationStreamKey('baton:'), '*', 'kind', 'token'), /NOPERM/, 'and it cannot write the feed')
})

t.test('catch-up on start: a revocation from before the resource-service started is refused once it is ready', async (t) => {
  const auth = await startAuth(t)
  await auth.register('ada')
  const session = await auth.login('ada')
  const token = await auth.login('ada')
  t.equal((await auth.post('/oauth/revoke', { token: session.refresh_token })).status, 200)
  t.equal((await auth.post('/oauth/revoke', { token: token.access_token })).status, 200)

  const resource = await startResource(t, auth, { REDIS_URL: auth.redis.url })
  await resource.ready()
  t.equal((await resource.me(session.access_token)).status, 401, 'the first request after ready is refused')
  t.equal((await resource.me(token.access_token)).status, 401)
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="session"'), 1)
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="token"'), 1)
})

t.test('not ready before the first catch-up; a Redis outage after it keeps verifying', async (t) => {
  const auth = await startAuth(t)
  const link = await cuttableLink(t, auth.redis)
  await link.cut()
  const resource = await startResource(t, auth, { REDIS_URL: link.url })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const notReady = await fetch(`${resource.url}/readyz`)
  t.equal(notReady.status, 503, 'a verifier that knows no revocations yet is not ready')
  t.match(await notReady.json(), { checks: { keys: 'ok', revocation_feed: /not caught up/ } })
  await link.restore()
  await resource.ready()
  t.same(await (await fetch(`${resource.url}/readyz`)).json(), { status: 'ok', checks: { keys: 'ok', revocation_feed: 'ok' } })
})

t.test('catch-up after reconnect: revoked while the link was down, refused once it is back', async (t) => {
  const auth = await startAuth(t)
  const link = await cuttableLink(t, auth.redis)
  const resource = await startResource(t, auth, { REDIS_URL: link.url })
  await resource.ready()
  await auth.register('ada')
  const [seen, missed, revokedMeanwhile, trimmedAway, afterTrim] = [
    await auth.login('ada'), await auth.login('ada'), await auth.login('ada'), await auth.login('ada'), await auth.login('ada')
  ]
  t.equal((await auth.post('/oauth/revoke', { token: seen.refresh_token })).status, 200)
  t.ok(await refused(resource, seen.access_token))

  await link.cut()
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_connected') === 0), 'the feed reports itself disconnected')
  t.equal((await auth.post('/oauth/revoke', { token: missed.refresh_token })).status, 200)
  t.equal((await auth.post('/oauth/revoke', { token: revokedMeanwhile.refresh_token })).status, 200)
  t.ok(await accepted(resource, missed.access_token), 'a verifier cut off cannot know yet')
  t.equal((await fetch(`${resource.url}/readyz`)).status, 200, 'and stays ready: it keeps verifying with what it knows')
  t.ok(await refused(resource, seen.access_token), 'what it knew still applies')

  await link.restore()
  t.ok(await refused(resource, missed.access_token), 'refused after the reconnect')
  t.ok(await refused(resource, revokedMeanwhile.access_token))
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_connected') === 1))
  t.equal(await resource.metric('baton_resource_revocation_feed_gaps_total', 'reason="entries_missed"'), undefined, 'nothing was missed')

  // Entries trimmed before the verifier read them: noticed from the next entry's `prev`, counted as a gap.
  const admin = new Redis(auth.redis.url)
  t.teardown(() => { admin.disconnect() })
  const stream = revocationStreamKey('baton:')
  await link.cut()
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_connected') === 0))
  t.equal((await auth.post('/oauth/revoke', { token: trimmedAway.refresh_token })).status, 200)
  t.equal((await auth.post('/oauth/revoke', { token: afterTrim.refresh_token })).status, 200)
  const entries = await admin.xrange(stream, '-', '+')
  await admin.xtrim(stream, 'MINID', entries.at(-1)![0])
  await link.restore()
  t.ok(await refused(resource, afterTrim.access_token), 'the entry after the gap applies')
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_gaps_total', 'reason="entries_missed"') === 1), 'the gap is counted')
  t.ok(await accepted(resource, trimmedAway.access_token), 'the trimmed one is honoured only at expiry')

  // The stream gone altogether (a Redis that lost its data): counted, and the feed starts over.
  await link.cut()
  await admin.del(stream)
  await link.restore()
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_gaps_total', 'reason="stream_lost"') === 1))
  const later = await auth.login('ada')
  t.equal((await auth.post('/oauth/revoke', { token: later.refresh_token })).status, 200)
  t.ok(await refused(resource, later.access_token), 'new revocations apply on the new stream')
})

/** Both services following one Redis, with one of ada's two sessions revoked and refused. */
async function followingWithOneRevoked (t: Test, redis?: TestRedis): Promise<{ auth: AuthService & { redis: TestRedis }, resource: ResourceService, revoked: Tokens, valid: Tokens }> {
  const auth = await startAuth(t, {}, redis === undefined ? {} : { redis })
  const resource = await startResource(t, auth, { REDIS_URL: auth.redis.url })
  await resource.ready()
  await auth.register('ada')
  const revoked = await auth.login('ada')
  const valid = await auth.login('ada')
  t.equal((await auth.post('/oauth/revoke', { token: revoked.refresh_token })).status, 200)
  t.ok(await refused(resource, revoked.access_token))
  return { auth, resource, revoked, valid }
}

t.test('Redis paused: requests never wait on it, known revocations still apply', async (t) => {
  const { auth, resource, revoked, valid } = await followingWithOneRevoked(t)

  auth.redis.pause()
  t.teardown(() => { auth.redis.resume() })
  const started = Date.now()
  for (let i = 0; i < 20; i++) {
    t.equal((await resource.me(revoked.access_token)).status, 401)
    t.equal((await resource.me(valid.access_token)).status, 200)
  }
  t.ok(Date.now() - started < 2000, 'forty requests answered without waiting for the paused Redis')
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_connected') === 0, 6000), 'the blocked read times out: reported disconnected')
  t.equal((await fetch(`${resource.url}/readyz`)).status, 200, 'still ready')

  auth.redis.resume()
  t.ok(await eventually(async () => await resource.metric('baton_resource_revocation_feed_connected') === 1, 6000), 'caught up again')
  t.ok(await eventually(async () => (await auth.post('/oauth/revoke', { token: valid.refresh_token })).status === 200, 5000))
  t.ok(await refused(resource, valid.access_token))
})

t.test('catch-up after redis-server restarts with its append-only file', async (t) => {
  const redis = await startRedis({ appendonly: true, extraArgs: ['--appendfsync', 'always'] })
  t.teardown(async () => { await redis.stop() })
  const { auth, resource, revoked: before, valid: after } = await followingWithOneRevoked(t, redis)

  await redis.restart()
  t.equal((await resource.me(before.access_token)).status, 401, 'known revocations apply while Redis restarts')
  t.ok(await eventually(async () => (await auth.post('/oauth/revoke', { token: after.refresh_token })).status === 200, 5000))
  t.ok(await refused(resource, after.access_token, 5000), 'refused after both reconnected')
  t.equal(await resource.metric('baton_resource_revocation_feed_gaps_total', 'reason="stream_lost"'), undefined, 'the persisted stream is the same stream')
})

t.test('entries are held only until the tokens they name expire', async (t) => {
  const clock = testClock()
  const auth = await startAuth(t, { ACCESS_TOKEN_TTL: '60s', CLOCK_SKEW: '5s' })
  const resource = await startResource(t, auth, { REDIS_URL: auth.redis.url, CLOCK_SKEW: '5s' }, clock.now)
  await resource.ready()
  await auth.register('ada')
  const session = await auth.login('ada')
  const token = await auth.login('ada')
  t.equal((await auth.post('/oauth/revoke', { token: session.refresh_token })).status, 200)
  t.equal((await auth.post('/oauth/revoke', { token: token.access_token })).status, 200)
  t.ok(await refused(resource, session.access_token))
  t.ok(await refused(resource, token.access_token))

  clock.advance(55_000)
  t.ok(await refused(resource, session.access_token, 0), 'still refused as revoked while the token lives')
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="session"'), 1)
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="token"'), 1)

  // Past exp + CLOCK_SKEW at the issuer + this verifier's CLOCK_SKEW: the token is refused as expired, the entry is gone.
  clock.advance(20_000)
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="session"'), 0)
  t.equal(await resource.metric('baton_resource_revocation_feed_entries', 'kind="token"'), 0)
  const { status, challenge } = await resource.me(session.access_token)
  t.equal(status, 401)
  t.match(challenge, /expired/)
})

t.test('without REDIS_URL the resource-service never opens a connection to Redis', async (t) => {
  const keys = [generateTestKey('EdDSA')]
  const jwks = await startJwksServer(keys)
  t.teardown(jwks.close)
  const jwksPort = Number(new URL(jwks.url).port)
  const ports: number[] = []
  const onSocket = ({ socket }: { socket: Socket }): void => { socket.once('connect', () => { ports.push(socket.remotePort ?? -1) }) }
  const sockets = channel('net.client.socket')
  sockets.subscribe(onSocket as (message: unknown) => void)
  t.teardown(() => { sockets.unsubscribe(onSocket as (message: unknown) => void) })

  const resource = await startResource(t, { url: 'http://127.0.0.1:3001' }, { JWKS_URL: jwks.url })
  await resource.ready()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const metrics = await (await fetch(`${resource.url}/metrics`)).text()
  const readiness = await (await fetch(`${resource.url}/readyz`)).json() as { checks: Record<string, string> }

  const resourcePort = Number(new URL(resource.url).port)
  t.same([...new Set(ports)].filter((port) => port !== resourcePort), [jwksPort], 'its only outgoing connections go to the JWKS')
  t.notMatch(metrics, /revocation_feed/, 'no feed metrics')
  t.same(Object.keys(readiness.checks), ['keys'], 'no feed in readiness')
})

t.test('the server process follows the feed and still stops cleanly on SIGTERM', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const keys = [generateTestKey('EdDSA')]
  const jwks = await startJwksServer(keys)
  t.teardown(jwks.close)
  const server = fileURLToPath(new URL('../dist/server.js', import.meta.url))
  const child = spawn(process.execPath, [server], {
    env: { PATH: process.env.PATH, PORT: '0', JWKS_URL: jwks.url, REDIS_URL: redis.url, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  t.ok(await eventually(async () => /revocation feed caught up/.test(stdout) && /Server listening/.test(stdout), 10_000), 'it caught up and listens')
  // Let the loop settle into its blocking read: SIGTERM must not wait out the BLOCK time and fail.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  child.kill('SIGTERM')
  t.same(await exited, { code: 0, signal: null })
  t.notMatch(stdout, /"level":50/, 'no error logged on the way out')
})
