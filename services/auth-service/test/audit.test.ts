import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { setup, register, bearer, dumpStrings, type Tokens } from './helper.js'

const CLIENT_SECRET = 'confidential-client-secret-0123456789abcdef'
const CLIENTS = JSON.stringify([
  { client_id: 'web', grant_types: ['password', 'refresh_token'] },
  { client_id: 'mobile', grant_types: ['password', 'refresh_token'] },
  { client_id: 'reporting', client_secret: CLIENT_SECRET, grant_types: ['client_credentials'], scope: 'reports:read', introspection: true }
])
const UA = { web: 'Browser/1.0 (audit test)', mobile: 'MobileApp/2.3 (audit test)' }

type Line = Record<string, unknown>

function events (logs: string): Line[] {
  return logs.split('\n').filter((line) => line.includes('"event":"')).map((line) => JSON.parse(line) as Line)
}

async function token (app: FastifyInstance, client: 'web' | 'mobile', payload: Record<string, string>, ip = '192.0.2.10'): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST', url: '/oauth/token', remoteAddress: ip, headers: { 'user-agent': UA[client] }, payload: { client_id: client, ...payload }
  })
}

t.test('a retry inside the grace window from the same client is a grace retry; from another client it is theft', async (t) => {
  const { app, logs } = await setup(t, { CLIENTS })
  const user = await register(app, 'audited')
  const loginWeb = async (): Promise<Tokens> => (await token(app, 'web', { grant_type: 'password', username: 'audited', password: user.password })).json<Tokens>()

  const first = await loginWeb()
  const rotated = await token(app, 'web', { grant_type: 'refresh_token', refresh_token: first.refresh_token })
  const retried = await token(app, 'web', { grant_type: 'refresh_token', refresh_token: first.refresh_token })
  t.equal(retried.statusCode, 200, 'the retry is served')
  t.equal(retried.json<Tokens>().refresh_token, rotated.json<Tokens>().refresh_token, 'with the same successor')
  const sid = (JSON.parse(Buffer.from(first.access_token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
  t.match(events(logs()).find((line) => line.event === 'refresh.grace_retry'), {
    level: 30, user: user.id, sid, client_id: 'web', ip: '192.0.2.10', user_agent: UA.web
  })
  t.notOk(events(logs()).some((line) => line.event === 'refresh.reuse_detected'), 'a race is not reported as theft')

  const second = await loginWeb()
  const secondSid = (JSON.parse(Buffer.from(second.access_token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
  const successor = (await token(app, 'web', { grant_type: 'refresh_token', refresh_token: second.refresh_token })).json<Tokens>()
  const stolen = await token(app, 'mobile', { grant_type: 'refresh_token', refresh_token: second.refresh_token }, '198.51.100.66')
  t.equal(stolen.statusCode, 400, 'the same token from another client, inside the window')
  t.equal(stolen.json<{ error: string }>().error, 'invalid_grant')
  t.equal((await token(app, 'web', { grant_type: 'refresh_token', refresh_token: successor.refresh_token })).statusCode, 400,
    'the whole family is revoked: the legitimate successor is dead too')
  t.equal((await app.inject({ method: 'GET', url: '/sessions', headers: bearer(successor.access_token) })).statusCode, 401,
    'and so are its access tokens at the auth-service')
  t.match(events(logs()).find((line) => line.event === 'refresh.reuse_detected'), {
    level: 40, user: user.id, sid: secondSid, client_id: 'mobile', ip: '198.51.100.66', user_agent: UA.mobile
  })
  t.match(events(logs()).find((line) => line.event === 'session.revoked'), { sid: secondSid, reason: 'refresh_token_reuse' })
})

t.test('every security event of a full flow is logged with who and where, and no secret is', async (t) => {
  const { app, logs } = await setup(t, { CLIENTS, LOG_LEVEL: 'trace', RATE_LIMIT_ACCOUNT_FAILURES: '2' })
  const password = 'audit trail passphrase 42'
  const newPassword = 'the replacement passphrase 43'
  const user = await register(app, 'loggeduser', password)
  const web = (await token(app, 'web', { grant_type: 'password', username: 'loggeduser', password })).json<Tokens>()
  const mobile = (await token(app, 'mobile', { grant_type: 'password', username: 'loggeduser', password })).json<Tokens>()
  const third = (await token(app, 'web', { grant_type: 'password', username: 'loggeduser', password })).json<Tokens>()
  const fourth = (await token(app, 'web', { grant_type: 'password', username: 'loggeduser', password })).json<Tokens>()
  const mobileSid = (await app.inject({ method: 'GET', url: '/sessions', headers: bearer(web.access_token) }))
    .json<{ sessions: Array<{ id: string, client_id: string }> }>().sessions.find((session) => session.client_id === 'mobile')!.id

  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${mobileSid}`, headers: { ...bearer(web.access_token), 'user-agent': UA.web } })).statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: third.refresh_token, client_id: 'web' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: fourth.access_token, client_id: 'web' } })).statusCode, 200)
  t.equal((await app.inject({
    method: 'POST', url: '/users/me/password', headers: bearer(web.access_token), payload: { current_password: password, new_password: newPassword, keep_current_session: true }
  })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: '/sessions', headers: bearer(web.access_token) })).statusCode, 204)
  for (let i = 0; i < 3; i++) await token(app, 'web', { grant_type: 'password', username: 'loggeduser', password: 'a wrong guess 123' })
  const basic = Buffer.from(`reporting:${CLIENT_SECRET}`).toString('base64')
  const service = await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: `Basic ${basic}` }, payload: { grant_type: 'client_credentials' } })
  t.equal(service.statusCode, 200)
  await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'client_credentials', client_id: 'reporting', client_secret: CLIENT_SECRET } })
  await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: `Basic ${basic}` }, payload: { token: web.access_token } })
  await app.inject({ method: 'GET', url: '/sessions', headers: { ...bearer(web.access_token), cookie: 'baton_session=cookie-secret-value' } })
  await app.inject({ method: 'GET', url: '/sessions', headers: { 'set-cookie': 'x=cookie-secret-value2', 'proxy-authorization': `Basic ${basic}` } })

  const seen = events(logs())
  const reasons = (event: string): unknown[] => seen.filter((line) => line.event === event).map((line) => line.reason)
  t.match(seen.find((line) => line.event === 'user.registered'), { user: user.id, ip: '127.0.0.1' })
  t.equal(seen.filter((line) => line.event === 'login.succeeded').length, 4)
  t.match(seen.find((line) => line.event === 'login.succeeded'), { user: user.id, client_id: 'web', ip: '192.0.2.10', user_agent: UA.web, sid: String })
  t.same(reasons('session.revoked'), ['logout', 'revocation_endpoint', 'password_change', 'logout_everywhere'], 'each way a session ends, in order')
  t.match(seen.find((line) => line.event === 'session.revoked' && line.reason === 'logout'), { sid: mobileSid, user: user.id, user_agent: UA.web })
  t.match(seen.find((line) => line.event === 'access_token.revoked'), { user: user.id, client_id: 'web' })
  t.match(seen.find((line) => line.event === 'password.changed'), { user: user.id, sessions_ended: 1 })
  t.same(reasons('login.failed'), ['wrong_password', 'wrong_password'])
  t.same(reasons('login.locked'), ['account_failures'])

  const text = logs()
  const secrets = [
    password, newPassword, 'a wrong guess 123', CLIENT_SECRET, basic, 'cookie-secret-value',
    ...[web, mobile, third, fourth].flatMap((tokens) => [tokens.refresh_token, tokens.access_token, tokens.access_token.split('.')[2]!, tokens.device_token!]),
    service.json<{ access_token: string }>().access_token
  ]
  for (const secret of secrets) t.notOk(text.includes(secret), `the log holds no ${secret.slice(0, 10)}…`)
})

t.test('at rest: Redis and the loaded configuration hold hashes, never a password, token or client secret', async (t) => {
  const { app, redis, prefix } = await setup(t, { CLIENTS })
  const password = 'stored only as argon2id 7'
  await register(app, 'atrest', password)
  const tokens = (await token(app, 'web', { grant_type: 'password', username: 'atrest', password })).json<Tokens>()
  const rotated = (await token(app, 'web', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).json<Tokens>()
  const basic = Buffer.from(`reporting:${CLIENT_SECRET}`).toString('base64')
  t.equal((await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: `Basic ${basic}` }, payload: { grant_type: 'client_credentials' } })).statusCode, 200)

  const stored = await dumpStrings(redis, prefix)
  t.match(stored, /\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'the password is an argon2id hash')
  for (const secret of [password, CLIENT_SECRET, tokens.refresh_token, rotated.refresh_token, tokens.access_token, rotated.access_token, tokens.device_token!]) {
    t.notOk(stored.includes(secret), `Redis holds no ${secret.slice(0, 10)}…`)
  }
  const loaded = JSON.stringify(app.config.CLIENTS) + JSON.stringify([...app.auth.clients.values()])
  t.notOk(loaded.includes(CLIENT_SECRET), 'the configuration kept in memory has no clear client secret')
})
