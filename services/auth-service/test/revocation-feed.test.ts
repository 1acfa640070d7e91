import t from 'tap'
import { decodeRevocationEvent } from '@baton/tokens'
import { bearer, decodeJwt, login, register, setup, until, type TestContext } from './helper.js'

const feedOf = (context: TestContext): string => `${context.prefix}revocations`

/** The stream's entries as the verifiers read them. */
async function entries (context: TestContext): Promise<Array<{ id: string, prev: string | undefined, event: ReturnType<typeof decodeRevocationEvent> }>> {
  return (await context.redis.xrange(feedOf(context), '-', '+')).map(([id, fields]) => ({
    id, prev: fields[fields.indexOf('prev') + 1], event: decodeRevocationEvent(fields)
  }))
}

async function metric (context: TestContext, outcome: string): Promise<number> {
  const text = (await context.app.inject({ url: '/metrics' })).body
  return Number(new RegExp(`baton_auth_revocation_feed_events_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
}

t.test('each revocation is appended to the feed with the bound verifiers may forget it by', async (t) => {
  const context = await setup(t, { ACCESS_TOKEN_TTL: '60s', CLOCK_SKEW: '5s' })
  const { app, clock } = context
  const user = await register(app)
  const first = await login(app, user.username, user.password)
  const second = await login(app, user.username, user.password)
  const sid = (token: string): string => decodeJwt(token).payload.sid as string

  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${sid(second.access_token)}`, headers: bearer(first.access_token) })).statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: first.access_token } })).statusCode, 200)
  const third = await login(app, user.username, user.password)
  const fourth = await login(app, user.username, user.password)
  t.equal((await app.inject({
    method: 'POST', url: '/users/me/password', headers: bearer(third.access_token),
    payload: { current_password: user.password, new_password: 'a different passphrase', keep_current_session: true }
  })).statusCode, 204)

  const [ended, token, changed] = await entries(context)
  const at = clock.now()
  t.same(ended?.event, { kind: 'sessions', sub: user.id, sids: [sid(second.access_token)], at, until: at + 65_000 }, 'a session: until the longest token lifetime plus the skew')
  t.equal(ended?.prev, '0-0', 'the first entry has no predecessor')
  const { jti, exp } = decodeJwt(first.access_token).payload as { jti: string, exp: number }
  t.same(token?.event, { kind: 'token', sub: user.id, jti, at, until: (exp + 5) * 1000 }, 'one access token: until it expires, plus the skew')
  t.equal(token?.prev, ended?.id, 'each entry names the one before')
  const changedEvent = changed?.event?.kind === 'sessions' ? { ...changed.event, sids: [...changed.event.sids].sort() } : changed?.event
  t.same(changedEvent, { kind: 'sessions', sub: user.id, sids: [sid(first.access_token), sid(fourth.access_token)].sort(), at, until: at + 65_000 },
    'a password change names the ended sessions, never the kept one')
  t.equal(await metric(context, 'published'), 3)
  t.equal(await metric(context, 'failed'), 0)
})

t.test('the feed stays bounded: each append trims entries older than the longest token lifetime', async (t) => {
  const context = await setup(t)
  const { app, redis } = context
  // Entries from long ago, as a feed that has run for days would hold.
  const old = redis.pipeline()
  for (let i = 1; i <= 1000; i++) old.xadd(feedOf(context), `${i}-0`, 'kind', 'sessions', 'sub', 'u', 'sids', 's', 'at', '0', 'until', '0')
  await old.exec()
  const user = await register(app)
  const tokens = await login(app, user.username, user.password)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: tokens.refresh_token } })).statusCode, 200)
  const remaining = await entries(context)
  t.ok(remaining.length <= 101, `trimmed to whole stream nodes: ${remaining.length} entries left of 1001`)
  t.equal(remaining.at(-1)?.event?.sub, user.id, 'the new entry is kept')
})

t.test('a failed append is retried; the revocation answers success either way', async (t) => {
  const context = await setup(t)
  const { app, redis, logs } = context
  const user = await register(app)

  // A stream key of the wrong type makes every append fail, while the revocation itself succeeds.
  await redis.set(feedOf(context), 'not a stream')
  const lost = await login(app, user.username, user.password)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: lost.refresh_token } })).statusCode, 200, 'the session is ended and the client told so')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(lost.access_token) })).statusCode, 401, 'and the auth-service refuses its tokens at once')
  await until('the append given up', async () => await metric(context, 'failed') > 0)
  t.equal(await metric(context, 'failed'), 1, 'given up after the bounded retries')
  t.equal(await metric(context, 'retried'), 5)
  t.match(logs(), /revocation feed: event lost after retries/)
  t.notMatch(logs(), lost.refresh_token)

  const recovered = await login(app, user.username, user.password)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: recovered.refresh_token } })).statusCode, 200)
  await redis.del(feedOf(context))
  await until('a retry published', async () => await metric(context, 'published') > 0)
  t.equal(await metric(context, 'published'), 1, 'a retry after the fault cleared publishes')
  t.same((await entries(context)).map((entry) => entry.event?.kind === 'sessions' ? entry.event.sids : undefined), [[decodeJwt(recovered.access_token).payload.sid]])
})
