import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { redisCommand, startRedis, type TestRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { scriptSha } from '../src/redis/scripts.js'
import { register, login, refresh, bearer, decodeJwt } from './helper.js'

// A 503 within REDIS_COMMAND_TIMEOUT (500 ms below), with room for a loaded machine; a
// request that waited for Redis instead would wait until the test brings it back.
const FAST_503_MS = 2500

const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const start = Date.now()
  const result = await fn()
  return [result, Date.now() - start]
}

t.test('Redis going away and coming back', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, LOG_LEVEL: 'silent', REDIS_COMMAND_TIMEOUT: '1000' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  // As in faultyApp: the set-up itself must not meet a deadline a loaded machine has not measured yet.
  await until('the Redis clock', async () => app.redisDeadline() > 0)
  await waitUntilReady(app)
  const user = await register(app, 'Liam')
  const tokens = await login(app, 'Liam', user.password)
  t.equal((await app.inject('/readyz')).statusCode, 200)

  t.test('refused connections: a fast 503, unready', async (t) => {
    server.kill('SIGKILL')
    // Once the client has seen the connection go: from then on every request meets a refused connection.
    await until('the client to see Redis gone', async () => (await app.inject('/readyz')).statusCode === 503)
    const [response, ms] = await timed(async () => await refresh(app, tokens.refresh_token))
    t.equal(response.statusCode, 503)
    t.equal(response.json().error, 'temporarily_unavailable')
    t.equal(response.headers['retry-after'], '1')
    t.ok(ms < FAST_503_MS, `answered in ${ms} ms`)
    const [ready, readyMs] = await timed(async () => await app.inject('/readyz'))
    t.equal(ready.statusCode, 503)
    t.ok(readyMs < FAST_503_MS, `readyz answered in ${readyMs} ms`)
    t.equal((await app.inject('/healthz')).statusCode, 200, 'still alive')
  })

  t.test('a paused server: 503 within the command timeout, not a hang', async (t) => {
    await server.restart()
    await waitUntilReady(app)
    server.pause()
    t.teardown(() => { server.resume() })
    const [response, ms] = await timed(async () => await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'nobody', password: 'whatever1' } }))
    t.equal(response.statusCode, 503)
    t.ok(ms < FAST_503_MS, `answered in ${ms} ms`)
    server.resume()
  })

  t.test('recovers by itself when Redis returns', async (t) => {
    await waitUntilReady(app)
    // The server restarted without persistence: data is gone, service is back.
    const again = await register(app, 'Liam2')
    const fresh = await login(app, 'Liam2', again.password)
    t.equal((await refresh(app, fresh.refresh_token)).statusCode, 200)
  })
})

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function waitUntilReady (app: FastifyInstance): Promise<void> {
  await until('/readyz to answer 200', async () => (await app.inject('/readyz')).statusCode === 200)
}

let apps = 0

async function faultyApp (t: Test, server: TestRedis, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, redis: Redis, prefix: string }> {
  const prefix = `faults${++apps}:`
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', REDIS_COMMAND_TIMEOUT: '500', ...env }))
  await app.ready()
  // The deadline that makes late scripts refuse needs the Redis clock measured; a login, the
  // signing keys, which a loaded machine may not have read by the time ready() returns.
  await until('the Redis clock', async () => app.redisDeadline() > 0)
  await waitUntilReady(app)
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(async () => {
    await app.close()
    redis.disconnect()
  })
  return { app, redis, prefix }
}


/** Calls `observe` as the app writes each command to Redis, until the returned function is called. */
function onEveryCommand (app: FastifyInstance, observe: () => void): () => void {
  const client = app.redis as unknown as { sendCommand: (...args: unknown[]) => unknown }
  const send = client.sendCommand
  client.sendCommand = function (...args) {
    observe()
    return send.apply(this, args)
  }
  return () => { client.sendCommand = send }
}

/**
 * Fault injection at the wire: runs `fault` once, as the app sends the
 * given script (before it is written, or just after with `after`).
 */
function onScript (app: FastifyInstance, file: string, fault: () => void, { after = false } = {}): void {
  const sha = scriptSha(file)
  const client = app.redis as unknown as { sendCommand: (command: { name: string, args: unknown[] }, stream?: unknown) => unknown }
  const send = client.sendCommand
  client.sendCommand = function (command, stream) {
    const matches = (command.name === 'evalsha' && command.args[0] === sha)
    if (matches) client.sendCommand = send
    if (matches && !after) fault()
    const result = send.call(this, command, stream)
    if (matches && after) fault()
    return result
  }
}

/** Blocks this process's event loop, as a stalled client host would: replies wait, timers expire. */
function stall (ms: number): void {
  const end = Date.now() + ms
  while (Date.now() < end) { /* spin */ }
}

/** One assertion: 503 temporarily_unavailable, Retry-After: 1, and no token. */
const unavailable = (t: Test, response: { statusCode: number, headers: Record<string, unknown>, json: () => Record<string, unknown> }, what: string): void => {
  const body = response.json()
  t.same({ status: response.statusCode, error: body.error, retryAfter: response.headers['retry-after'], token: body.access_token ?? body.refresh_token },
    { status: 503, error: 'temporarily_unavailable', retryAfter: '1', token: undefined }, `${what}: 503, retry after 1 s, no token`)
}

t.test('a server restarted from its append-only file: sessions, accounts and keys survive', async (t) => {
  const server = await startRedis({ appendonly: true })
  t.teardown(async () => { await server.stop() })
  const { app } = await faultyApp(t, server)
  const user = await register(app, 'persisted')
  const tokens = await login(app, 'persisted', user.password)
  const kid = decodeJwt(tokens.access_token).header.kid

  await server.restart()
  await waitUntilReady(app)
  t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 200, 'the access token still works')
  const rotated = await refresh(app, tokens.refresh_token)
  t.equal(rotated.statusCode, 200, 'so does the refresh token')
  t.equal(decodeJwt(rotated.json().access_token).header.kid, kid, 'signed by the same key')
})

t.test('a server restarted without persistence: users must sign in again, signed tokens still verify', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server, { KEYRING_RELOAD_INTERVAL: '1s' })
  const user = await register(app, 'forgotten')
  const tokens = await login(app, 'forgotten', user.password)
  const secret = await redis.get(`${prefix}refresh-token-secret`)
  const jwksBefore = (await app.inject('/.well-known/jwks.json')).json()

  server.kill('SIGKILL')
  await server.restart()
  await waitUntilReady(app)

  const spent = await refresh(app, tokens.refresh_token)
  t.equal(spent.statusCode, 400, 'the session is gone')
  t.equal(spent.json().error, 'invalid_grant')
  const again = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'forgotten', password: user.password } })
  t.equal(again.json().error, 'invalid_grant', 'and so is the account: nothing was persisted')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 401, 'the auth-service honours only live sessions')

  // The instance writes back what it holds, so tokens signed before stay verifiable and instances keep agreeing.
  await until('the keyring written back', async () => await redis.exists(`${prefix}signing-keys`) === 1 && await redis.exists(`${prefix}refresh-token-secret`) === 1)
  t.equal(await redis.get(`${prefix}refresh-token-secret`), secret, 'the same refresh-token secret')
  const jwks = (await app.inject('/.well-known/jwks.json')).json()
  t.same(jwks, jwksBefore, 'the same published keys')
  const { payload } = await jwtVerify(tokens.access_token, createLocalJWKSet(jwks), { issuer: 'http://127.0.0.1:3001', audience: 'baton-api' })
  t.equal(payload.sub, user.id, 'an access token signed before the loss verifies at a stateless verifier')

  // A second instance started now shares the restored secret: its refreshes accept the first one's tokens.
  const other = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }))
  t.teardown(async () => { await other.close() })
  await other.ready()
  const back = await register(app, 'forgotten')
  const fresh = await login(app, 'forgotten', back.password)
  const elsewhere = await refresh(other, fresh.refresh_token)
  t.equal(elsewhere.statusCode, 200, 'the other instance rotates it')
  t.equal(decodeJwt(elsewhere.json().access_token).header.kid, decodeJwt(tokens.access_token).header.kid, 'with the same signing key')
})

t.test('pointed at a read-only replica: every write is a 503 with Retry-After, never a 500; recovers once promoted', async (t) => {
  const primary = await startRedis()
  t.teardown(async () => { await primary.stop() })
  const replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] })
  t.teardown(async () => { await replica.stop() })
  const { app, prefix } = await faultyApp(t, primary)
  const user = await register(app, 'replicated')
  const tokens = await login(app, 'replicated', user.password)
  await until('the replica in sync', async () => /master_link_status:up/.test(String(await redisCommand(replica.port, ['INFO', 'replication']))) &&
    await redisCommand(replica.port, ['EXISTS', `${prefix}signing-keys`]) === 1)

  const onReplica = await buildApp(loadConfig({ REDIS_URL: replica.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', REDIS_COMMAND_TIMEOUT: '500' }))
  t.teardown(async () => { await onReplica.close() })
  await onReplica.ready()
  await until('keys read from the replica', async () => onReplica.keyring.ready())
  const ready = await onReplica.inject('/readyz')
  t.equal(ready.statusCode, 503, 'not ready: it cannot write')
  t.match(ready.json().checks.redis, /read-only/)

  unavailable(t, await onReplica.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'replicated', password: user.password } }), 'login')
  unavailable(t, await refresh(onReplica, tokens.refresh_token), 'refresh')
  unavailable(t, await onReplica.inject({ method: 'POST', url: '/users', payload: { username: 'newcomer', password: 'correct horse battery' } }), 'registration')
  unavailable(t, await onReplica.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: tokens.refresh_token } }), 'revocation')
  unavailable(t, await onReplica.inject({ method: 'DELETE', url: '/sessions', headers: bearer(tokens.access_token) }), 'log out everywhere')
  // Listing prunes expired entries as it reads, so it is a write too; the token itself verified (a read).
  unavailable(t, await onReplica.inject({ url: '/sessions', headers: bearer(tokens.access_token) }), 'the session list')
  t.equal((await onReplica.inject('/.well-known/jwks.json')).statusCode, 200, 'the keys are served from what was read')

  // Failover: the replica becomes the primary; the same instance serves writes without a restart.
  t.equal(await redisCommand(replica.port, ['REPLICAOF', 'NO', 'ONE']), 'OK')
  await waitUntilReady(onReplica)
  t.equal((await refresh(onReplica, tokens.refresh_token)).statusCode, 200, 'the refresh token survived the failover')
})

t.test('a refresh timed out on a paused server never takes effect later, however long the client retries', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  // A short grace window: retries during the pause outlast it, as a longer outage would outlast 10 s.
  const { app, redis, prefix } = await faultyApp(t, server, { REFRESH_REUSE_GRACE: '1s' })
  const user = await register(app, 'patient')
  const tokens = await login(app, 'patient', user.password)
  const sid = decodeJwt(tokens.access_token).payload.sid as string
  const session = `${prefix}user:{${user.id}}:session:${sid}`

  server.pause()
  t.teardown(() => { server.resume() })
  for (let attempt = 0; attempt < 4; attempt++) {
    const [response, ms] = await timed(async () => await refresh(app, tokens.refresh_token))
    unavailable(t, response, `retry ${attempt} during the pause`)
    t.ok(ms < FAST_503_MS, `answered in ${ms} ms`)
    await sleep(300)
  }
  t.equal((await app.inject('/readyz')).statusCode, 503, 'unready while paused')
  server.resume()
  // Redis now runs the four rotations it was sent: each is past its deadline and refuses.
  await waitUntilReady(app)
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready again, without a restart')
  t.equal(await redis.hget(session, 'gen'), '1', 'no rotation was applied after its 503')

  const retried = await refresh(app, tokens.refresh_token)
  t.equal(retried.statusCode, 200, 'the next retry rotates as if nothing happened')
  t.equal((await refresh(app, retried.json().refresh_token)).statusCode, 200, 'and the session lives on')
  t.notMatch((await app.inject('/metrics')).body, /baton_auth_refresh_reuse_detected_total [1-9]/, 'no reuse was detected')
})

t.test('a rotation done by Redis whose reply came too late: the retry gets the same successor', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app } = await faultyApp(t, server)
  const user = await register(app, 'stalled')
  const tokens = await login(app, 'stalled', user.password)

  // The command reaches Redis and runs; this process stalls past its timeout before reading the reply.
  onScript(app, 'rotate-refresh.lua', () => { stall(700) }, { after: true })
  unavailable(t, await refresh(app, tokens.refresh_token), 'the refresh')
  const retried = await refresh(app, tokens.refresh_token)
  t.equal(retried.statusCode, 200, 'the retry of the old token is a grace retry, not theft')
  t.match((await app.inject('/metrics')).body, /baton_auth_refresh_grace_retries_total 1/)
  t.equal((await refresh(app, retried.json().refresh_token)).statusCode, 200, 'its successor is the session\'s current token')
})

t.test('a login whose session write timed out returns no token and leaves no session', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server)
  const user = await register(app, 'unlucky')

  onScript(app, 'create-session.lua', () => { server.pause() })
  t.teardown(() => { server.resume() })
  unavailable(t, await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'unlucky', password: user.password } }), 'the login')
  server.resume()
  await waitUntilReady(app)
  t.equal(await redis.zcard(`${prefix}user:{${user.id}}:sessions`), 0, 'the late session write refused: no session nobody holds a token for')
  t.equal((await login(app, 'unlucky', user.password)).token_type, 'Bearer', 'logging in again works')
})

t.test('no offline queue and no resend: a write reported failed stays undone', async (t) => {
  const server = await startRedis({ appendonly: true })
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server)
  const user = await register(app, 'logout')
  const tokens = await login(app, 'logout', user.password)
  const sid = decodeJwt(tokens.access_token).payload.sid as string

  // Connection refused: nothing is queued for later.
  server.kill('SIGKILL')
  await sleep(100)
  unavailable(t, await app.inject({ method: 'DELETE', url: `/sessions/${sid}`, headers: bearer(tokens.access_token) }), 'logout with Redis down')
  await server.restart()
  await waitUntilReady(app)
  t.equal(await redis.exists(`${prefix}user:{${user.id}}:session:${sid}`), 1, 'the logout was not replayed on reconnect')

  // Sent, unanswered, and the server dies: the reconnect does not send it again.
  server.pause()
  unavailable(t, await app.inject({ method: 'DELETE', url: `/sessions/${sid}`, headers: bearer(tokens.access_token) }), 'logout with Redis paused')
  server.kill('SIGKILL')
  await server.restart()
  await waitUntilReady(app)
  t.equal(await redis.exists(`${prefix}user:{${user.id}}:session:${sid}`), 1, 'the unanswered logout was not resent')
  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${sid}`, headers: bearer(tokens.access_token) })).statusCode, 204, 'the user\'s retry logs out')
})

t.test('no offline queue: a logout while the client reconnects answers 503 at once and never runs once Redis is back', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  // A command timeout far beyond the test: a queued command would wait for Redis, not time out.
  const { app, redis, prefix } = await faultyApp(t, server, { REDIS_COMMAND_TIMEOUT: '10000' })
  const user = await register(app, 'reconnecting')
  const tokens = await login(app, 'reconnecting', user.password)
  const sid = decodeJwt(tokens.access_token).payload.sid as string
  const session = `${prefix}user:{${user.id}}:session:${sid}`

  // A paused server still accepts connections (the kernel does) but answers nothing: the app's
  // client reconnects and waits for the answer to its ready check, connected but not ready.
  const client = app.redis as Redis
  server.pause()
  t.teardown(() => { server.resume() })
  client.disconnect(true)
  await until('the client to wait on its ready check', async () => client.status === 'connect')
  // Redis comes back the moment the logout's first command has been handed to the client:
  // a queued command would then be sent, and the logout would run.
  onScript(app, 'token-status.lua', () => { server.resume() }, { after: true })
  const [logout, ms] = await timed(async () => await app.inject({ method: 'DELETE', url: `/sessions/${sid}`, headers: bearer(tokens.access_token) }))
  unavailable(t, logout, 'the logout')
  t.ok(ms < 5000, `answered in ${ms} ms, not after a command timeout`)
  await waitUntilReady(app)
  t.equal(await redis.exists(session), 1, 'the logout the user was told failed did not run later')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'the session lives on')
})

// Long enough that what a request costs besides Redis (a password hash on a loaded machine:
// hundreds of ms) fits in the room below, short enough to keep the tests quick.
const COMMAND_TIMEOUT_MS = 1000
// Room for a loaded machine; a request that waited the timeout twice (calls queued behind others,
// or one after another: three calls stalled 0.7 timeouts each) never fits.
const WITHIN_TIMEOUTS = 1.8

interface Answer {
  statusCode: number
  headers: Record<string, string>
  json: () => Record<string, unknown>
  ms: number
}

/** A test's view of the auth-service over a real socket, as clients meet it: body parsing included. */
async function listening (app: FastifyInstance): Promise<(method: string, path: string, options?: { json?: unknown, form?: Record<string, string>, headers?: Record<string, string> }) => Promise<Answer>> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const call = async (method: string, path: string, options: { json?: unknown, form?: Record<string, string>, headers?: Record<string, string> } = {}): Promise<Answer> => {
    const headers: Record<string, string> = { ...options.headers }
    let body: string | undefined
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.json)
    } else if (options.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(options.form).toString()
    }
    const start = performance.now()
    const response = await fetch(base + path, { method, headers, body })
    const text = await response.text()
    const ms = Math.round(performance.now() - start)
    return { statusCode: response.status, headers: Object.fromEntries(response.headers), json: () => JSON.parse(text), ms }
  }
  // The first fetch loads the HTTP client: not a cost to charge to the first request timed.
  await call('GET', '/healthz')
  return call
}

const withinTimeout = (t: Test, answer: Answer, what: string): void => {
  const ratio = answer.ms / COMMAND_TIMEOUT_MS
  t.ok(ratio < WITHIN_TIMEOUTS, `${what}: answered in ${answer.ms} ms, ${ratio.toFixed(2)}× REDIS_COMMAND_TIMEOUT`)
}

const GATEWAY_SECRET = 'gateway-secret-0123456789'
const gateway = { authorization: `Basic ${Buffer.from(`gateway:${GATEWAY_SECRET}`).toString('base64')}` }
const CLIENTS = JSON.stringify([{ client_id: 'gateway', client_secret: GATEWAY_SECRET, grant_types: ['client_credentials'], introspection: true }])

t.test('Redis paused with another call in flight: every endpoint answers 503 within one command timeout, not after its calls queued', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server, { CLIENTS, REDIS_COMMAND_TIMEOUT: String(COMMAND_TIMEOUT_MS) })
  const call = await listening(app)
  const user = await register(app, 'queued')
  const [own, other, byAccessToken, byRefreshToken] = [
    await login(app, 'queued', user.password), await login(app, 'queued', user.password),
    await login(app, 'queued', user.password), await login(app, 'queued', user.password)
  ]
  const ownSid = decodeJwt(own.access_token).payload.sid as string
  const otherSid = decodeJwt(other.access_token).payload.sid as string
  const asOwner = bearer(own.access_token)
  const passwordHash = await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash')

  const endpoints: Array<[string, () => Promise<Answer>]> = [
    ['POST /users', async () => await call('POST', '/users', { json: { username: 'newcomer', password: 'correct horse battery' } })],
    ['password grant', async () => await call('POST', '/oauth/token', { form: { grant_type: 'password', username: 'queued', password: user.password } })],
    ['refresh grant', async () => await call('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: own.refresh_token } })],
    ['POST /users/me/password', async () => await call('POST', '/users/me/password', { headers: asOwner, json: { current_password: user.password, new_password: 'a brand new password' } })],
    ['POST /oauth/revoke, access token', async () => await call('POST', '/oauth/revoke', { form: { token: byAccessToken.access_token } })],
    ['POST /oauth/revoke, refresh token', async () => await call('POST', '/oauth/revoke', { form: { token: byRefreshToken.refresh_token } })],
    ['POST /oauth/introspect, access token', async () => await call('POST', '/oauth/introspect', { headers: gateway, form: { token: own.access_token } })],
    ['POST /oauth/introspect, refresh token', async () => await call('POST', '/oauth/introspect', { headers: gateway, form: { token: own.refresh_token } })],
    ['GET /sessions', async () => await call('GET', '/sessions', { headers: asOwner })],
    ['DELETE /sessions/:id', async () => await call('DELETE', `/sessions/${otherSid}`, { headers: asOwner })],
    ['DELETE /sessions', async () => await call('DELETE', '/sessions', { headers: asOwner })]
  ]
  for (const [what, send] of endpoints) {
    server.pause()
    // Another client's login is already waiting on the paused server; ioredis sends the next
    // auto-pipeline only once that one is answered, so this request's calls queue behind it.
    let sent!: () => void
    const inFlight = new Promise<void>((resolve) => { sent = resolve })
    const stopWatching = onEveryCommand(app, () => { sent() })
    const earlier = call('POST', '/oauth/token', { form: { grant_type: 'password', username: 'someone-else', password: 'whatever1' } })
    await inFlight
    stopWatching()
    const answer = await send()
    server.resume()
    unavailable(t, answer, what)
    withinTimeout(t, answer, what)
    t.equal((await earlier).statusCode, 503, `${what}: the login it queued behind failed too`)
    await waitUntilReady(app)
  }

  server.pause()
  const clientCredentials = await call('POST', '/oauth/token', { headers: gateway, form: { grant_type: 'client_credentials' } })
  server.resume()
  t.equal(clientCredentials.statusCode, 200, 'client_credentials needs no Redis: served while it is paused')

  // Redis ran what it had been sent as it resumed: the changes among it refused to take effect.
  t.equal(await redis.hget(`${prefix}user:{${user.id}}:session:${ownSid}`, 'gen'), '1', 'the refresh token was not rotated')
  t.equal(await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash'), passwordHash, 'the password was not changed')
  t.equal(await redis.exists(`${prefix}user:{${user.id}}:session:${otherSid}`), 1, 'the session named in DELETE /sessions/:id lives')
  t.equal((await register(app, 'newcomer')).username, 'newcomer', 'the name asked for during the pause is free')
  t.equal((await refresh(app, own.refresh_token)).statusCode, 200, 'the session refreshes as if nothing happened')
})

t.test('a Redis that answers every command late: a request answers within one command timeout, not one per call, and nothing it sent takes effect', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server, { REDIS_COMMAND_TIMEOUT: String(COMMAND_TIMEOUT_MS) })
  const call = await listening(app)
  const user = await register(app, 'sluggish')
  const tokens = await login(app, 'sluggish', user.password)
  const passwordHash = await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash')
  const sessions = `${prefix}user:{${user.id}}:sessions`

  /** Each command the app writes meets a server that stalls for most of the timeout: every call succeeds, slowly. */
  const slowly = async (send: () => Promise<Answer>): Promise<Answer> => {
    const resumes = new Set<NodeJS.Timeout>()
    let paused = false
    const stopWatching = onEveryCommand(app, () => {
      if (paused) return
      paused = true
      server.pause()
      resumes.add(setTimeout(() => { paused = false; server.resume() }, COMMAND_TIMEOUT_MS * 0.7))
    })
    try {
      return await send()
    } finally {
      stopWatching()
      for (const timer of resumes) clearTimeout(timer)
      server.resume()
      await waitUntilReady(app)
    }
  }

  const registration = await slowly(async () => await call('POST', '/users', { json: { username: 'slowcomer', password: 'correct horse battery' } }))
  unavailable(t, registration, 'registration (a count, then the account, then its name)')
  withinTimeout(t, registration, 'registration')
  const loggedIn = await slowly(async () => await call('POST', '/oauth/token', { form: { grant_type: 'password', username: 'sluggish', password: user.password } }))
  unavailable(t, loggedIn, 'login (two counts, the account, a count, the session)')
  withinTimeout(t, loggedIn, 'login')
  const changed = await slowly(async () => await call('POST', '/users/me/password', { headers: bearer(tokens.access_token), json: { current_password: user.password, new_password: 'a brand new password' } }))
  unavailable(t, changed, 'password change (the token, the account, counts, the new hash, the sessions)')
  withinTimeout(t, changed, 'password change')

  t.equal(await redis.zcard(sessions), 1, 'the login created no session')
  t.equal(await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash'), passwordHash, 'the password was not changed')
  t.equal((await register(app, 'slowcomer')).username, 'slowcomer', 'the name asked for is free')
  t.equal((await login(app, 'sluggish', user.password)).token_type, 'Bearer', 'the old password still logs in')
})

t.test('a password change whose write timed out changes nothing, and a registration whose name claim timed out creates no account', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const { app, redis, prefix } = await faultyApp(t, server)
  const user = await register(app, 'interrupted')
  const tokens = await login(app, 'interrupted', user.password)
  const passwordHash = await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash')
  t.teardown(() => { server.resume() })

  onScript(app, 'change-password.lua', () => { server.pause() })
  unavailable(t, await app.inject({ method: 'POST', url: '/users/me/password', headers: bearer(tokens.access_token), payload: { current_password: user.password, new_password: 'a brand new password' } }), 'the password change')
  server.resume()
  await waitUntilReady(app)
  t.equal(await redis.hget(`${prefix}user:{${user.id}}`, 'password_hash'), passwordHash, 'the late write refused: the password the user was told is unchanged still is')
  t.equal((await login(app, 'interrupted', user.password)).token_type, 'Bearer', 'and logs in')

  onScript(app, 'claim-username.lua', () => { server.pause() })
  unavailable(t, await app.inject({ method: 'POST', url: '/users', payload: { username: 'latecomer', password: 'correct horse battery' } }), 'the registration')
  server.resume()
  await waitUntilReady(app)
  t.equal(await redis.exists(`${prefix}username:latecomer`), 0, 'the late claim refused: no account by that name')
  t.equal((await register(app, 'latecomer')).username, 'latecomer', 'registering again works')
})
