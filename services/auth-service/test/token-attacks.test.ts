import t from 'tap'
import { performance } from 'node:perf_hooks'
import { setup, register, login, refresh, bearer, decodeJwt } from './helper.js'
import { generateTestKey, signToken, type TestKey } from '../../../packages/verifier/test/helper.js'
import { forgeries } from '../../../packages/verifier/test/forgeries.js'

const SECRET = 'resource-server-introspection-secret'
const BASIC = `Basic ${Buffer.from(`rs:${SECRET}`).toString('base64')}`

t.test('every place the auth-service reads a token refuses hostile ones', async (t) => {
  const ed = generateTestKey('EdDSA')
  const ec = generateTestKey('ES256')
  const { app } = await setup(t, {
    // Both keys published, the Ed25519 one signs: the forgeries can use either real key.
    SIGNING_KEY: ed.privatePem + ec.privatePem,
    CLIENTS: JSON.stringify([{ client_id: 'rs', client_secret: SECRET, grant_types: ['client_credentials'], introspection: true }])
  })
  const published = (await app.inject('/.well-known/jwks.json')).json<{ keys: Array<{ kid: string, kty: string }> }>().keys
  const withKid = (key: TestKey, kty: string): TestKey => ({ ...key, kid: published.find((jwk) => jwk.kty === kty)!.kid })
  const realEd = withKid(ed, 'OKP')
  const realEc = withKid(ec, 'EC')

  const user = await register(app, 'target')
  const tokens = await login(app, 'target', user.password)
  const genuine = decodeJwt(tokens.access_token).payload
  const control = signToken(realEd, genuine)
  t.equal((await app.inject({ url: '/sessions', headers: bearer(control) })).statusCode, 200, 'a token signed here with the real key passes')

  const introspect = async (token: string): Promise<{ status: number, body: Record<string, unknown> }> => {
    const response = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: BASIC }, payload: { token } })
    return { status: response.statusCode, body: response.json() }
  }
  t.match(await introspect(control), { status: 200, body: { active: true, sub: user.id } }, 'and introspects as active')

  const list = forgeries({ ed: realEd, ec: realEc, genuine, trap: 'http://127.0.0.1:9/never' })
  const failures: string[] = []
  let slowest = 0
  // What a body parameter too long for its schema, or a body over BODY_LIMIT, gets instead of a verdict on the token.
  const oversized = (token: string, maxLength: number): string | undefined =>
    token.length > 16_000 ? '413 invalid_request' : token.length > maxLength ? '400 invalid_request' : undefined
  for (const { kind, name, token, malformedHeader } of list) {
    const label = `${kind}: ${name}`
    const started = performance.now()
    const answer = await introspect(token)
    const tooLong = oversized(token, 8192)
    if (tooLong !== undefined
      ? `${answer.status} ${String(answer.body.error)}` !== tooLong
      : answer.status !== 200 || JSON.stringify(answer.body) !== '{"active":false}') failures.push(`introspect ${label} → ${answer.status} ${JSON.stringify(answer.body)}`)

    const [status, error] = malformedHeader === true ? [400, 'invalid_request'] : [401, 'invalid_token']
    for (const [method, url, payload] of [['GET', '/sessions', undefined], ['DELETE', '/sessions', undefined],
      ['POST', '/users/me/password', { current_password: user.password, new_password: 'a takeover passphrase' }]] as const) {
      const response = await app.inject({ method, url, headers: bearer(token), payload })
      if (response.statusCode !== status || response.json<{ error: string }>().error !== error) failures.push(`${method} ${url} ${label} → ${response.statusCode} ${response.body}`)
    }

    const revoked = await app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token } })
    if (`${revoked.statusCode}${tooLong === undefined ? '' : ` ${revoked.json<{ error: string }>().error}`}` !== (tooLong ?? '200')) failures.push(`revoke ${label} → ${revoked.statusCode} ${revoked.body}`)

    const grant = await refresh(app, token)
    if (`${grant.statusCode} ${grant.json<{ error: string }>().error}` !== (oversized(token, 512) ?? '400 invalid_grant')) failures.push(`refresh grant ${label} → ${grant.statusCode} ${grant.body}`)
    slowest = Math.max(slowest, (performance.now() - started) / 6)
  }
  t.same(failures, [], `${list.length} hostile tokens, six places each`)
  // A slow path (a pathological parse, a wait on some fetch) costs seconds; each refusal takes
  // milliseconds, and a loaded machine can add most of a second to any one of hundreds.
  t.ok(slowest < 3000, `the slowest refusal took ${slowest.toFixed(1)} ms`)

  // Nothing a hostile token did changed anything: no revocation, no password change, no logout.
  t.equal((await app.inject({ url: '/sessions', headers: bearer(tokens.access_token) })).statusCode, 200, 'the session lives')
  t.equal((await login(app, 'target', user.password)).token_type, 'Bearer', 'the password is unchanged')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'the refresh token still works')
})

t.test('a refresh token is no access token, and an access token no refresh token', async (t) => {
  const { app } = await setup(t, { CLIENTS: JSON.stringify([{ client_id: 'rs', client_secret: SECRET, grant_types: ['client_credentials'], introspection: true }]) })
  const user = await register(app, 'mixup')
  const tokens = await login(app, 'mixup', user.password)

  const asBearer = await app.inject({ url: '/sessions', headers: bearer(tokens.refresh_token) })
  t.equal(asBearer.statusCode, 401)
  t.equal(asBearer.json<{ error: string }>().error, 'invalid_token')

  const asRefresh = await refresh(app, tokens.access_token)
  t.equal(asRefresh.statusCode, 400)
  t.equal(asRefresh.json<{ error: string }>().error, 'invalid_grant')

  const clientToken = (await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: BASIC }, payload: { grant_type: 'client_credentials' } })).json<{ access_token: string }>().access_token
  t.equal((await refresh(app, clientToken)).statusCode, 400, 'nor is a client_credentials token')
  t.equal((await app.inject({ url: '/sessions', headers: bearer(clientToken) })).statusCode, 401, 'which acts for no user')
  t.equal((await refresh(app, tokens.refresh_token)).statusCode, 200, 'none of it spent the real refresh token')
})
