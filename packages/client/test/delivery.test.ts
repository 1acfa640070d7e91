// How the refresh token travels, checked on the requests the client makes.
// Cookie mode has no server side yet: a fake auth-service answers here, as
// the cookie-mode auth-service is to answer (refresh token only in a cookie).
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CLIENT_HEADER, createClient, MemoryTokenStore, type ClientOptions } from '../src/index.js'

const ISSUER = 'https://auth.example.com'

interface Sent {
  url: string
  method: string
  credentials: RequestCredentials | undefined
  headers: Headers
  form: URLSearchParams
}

function jwt (claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'EdDSA', typ: 'at+jwt' })}.${part(claims)}.c2ln`
}

/** A fake auth-service: records what it is sent; token answers carry a refresh token as a misconfigured server might. */
function fakeAuthService (answers: Partial<Record<'refresh', () => Response>> = {}): { sent: Sent[], fetch: typeof fetch } {
  const sent: Sent[] = []
  let issued = 0
  return {
    sent,
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input)
      const form = new URLSearchParams(typeof init?.body === 'string' ? init.body : '')
      sent.push({ url, method: init?.method ?? 'GET', credentials: init?.credentials, headers: new Headers(init?.headers), form })
      if (url.endsWith('/oauth/token')) {
        if (form.get('grant_type') === 'refresh_token' && answers.refresh !== undefined) return answers.refresh()
        return Response.json({ access_token: jwt({ sid: 'session-1', n: ++issued }), token_type: 'Bearer', expires_in: 900, refresh_token: `leaked-refresh-${issued}`, scope: 'profile' })
      }
      if (url.endsWith('/oauth/revoke')) return Response.json({})
      return Response.json({ ok: true })
    }
  }
}

function cookieClient (fake: { fetch: typeof fetch }, options: Partial<ClientOptions> = {}): ReturnType<typeof createClient> {
  return createClient({ issuer: ISSUER, refreshTokenDelivery: 'cookie', fetch: fake.fetch, ...options })
}

t.test('cookie mode: every auth-service request includes credentials and the CSRF header; no refresh token is sent or kept', async (t) => {
  const fake = fakeAuthService()
  let now = Date.now()
  const client = cookieClient(fake, { now: () => now })
  t.equal(client.refreshTokenDelivery, 'cookie')

  await client.login('ada', 'pw')
  now += 900_000
  t.equal((await client.fetch(`${ISSUER}/sessions`)).status, 200)
  await client.logout()

  const toAuth = fake.sent.filter((request) => request.url.includes('/oauth/'))
  t.same(toAuth.map((request) => `${request.method} ${new URL(request.url).pathname} ${request.form.get('grant_type') ?? ''}`), [
    'POST /oauth/token password', 'POST /oauth/token refresh_token', 'POST /oauth/revoke '
  ])
  for (const request of toAuth) {
    t.equal(request.credentials, 'include', `${request.url}: the browser sends the cookie`)
    t.equal(request.headers.get(CLIENT_HEADER), '1', `${request.url}: with ${CLIENT_HEADER}, which no cross-site form can send`)
    t.equal(request.form.get('refresh_token'), null, `${request.url}: no refresh_token parameter`)
    t.equal(request.form.get('token'), null, `${request.url}: no token parameter`)
    t.notMatch(request.form.toString(), /leaked-refresh/, 'the refresh token an answer carried is never sent back')
  }
  t.same(Object.fromEntries(toAuth[1]!.form), { grant_type: 'refresh_token', client_id: 'baton' }, 'the refresh grant is the cookie alone')
  t.same(Object.fromEntries(toAuth[2]!.form), { token_type_hint: 'refresh_token', client_id: 'baton' }, 'so is the logout')
})

t.test('cookie mode: tabs are handed the access token, never a refresh token', { skip: typeof BroadcastChannel !== 'function' }, async (t) => {
  const channelName = `delivery-${process.pid}`
  const heard: unknown[] = []
  const listener = new BroadcastChannel(channelName)
  listener.onmessage = (event: MessageEvent) => { heard.push(event.data) }
  t.teardown(() => { listener.close() })

  const client = cookieClient(fakeAuthService(), { crossTab: true, channelName, tabSyncTimeoutMs: 50 })
  t.teardown(() => { client.close() })
  await client.login('ada', 'pw')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(heard, [{ type: 'tokens', reason: 'login', accessToken: String }])
  t.notMatch(JSON.stringify(heard), /leaked-refresh|refreshToken/, 'no refresh token crosses to other tabs')
})

t.test('cookie mode: a page without a session finds out by asking, quietly', async (t) => {
  const fake = fakeAuthService({ refresh: () => Response.json({ error: 'invalid_grant', error_description: 'no session' }, { status: 400 }) })
  const client = cookieClient(fake)
  let ended = 0
  client.on('session-ended', () => { ended++ })
  t.equal(await client.restore(), false, 'no cookie, no session')
  t.equal(ended, 0, 'and nothing ended: there was nothing')
  await t.rejects(client.fetch(`${ISSUER}/sessions`), { code: 'not_signed_in' })
  t.equal(fake.sent.length, 1, 'asked once')
})

t.test('cookie mode: a page with a session restores it from the cookie', async (t) => {
  const client = cookieClient(fakeAuthService())
  t.equal(await client.restore(), true)
  t.equal(client.sessionId, 'session-1')
})

t.test('token mode: the refresh token goes in the body and into the store; no credentials are sent', async (t) => {
  const fake = fakeAuthService()
  const store = new MemoryTokenStore()
  let now = Date.now()
  const client = createClient({ issuer: ISSUER, tokenStore: store, fetch: fake.fetch, now: () => now })
  await client.login('ada', 'pw')
  t.equal(store.get('refresh_token'), 'leaked-refresh-1')
  now += 900_000
  await client.fetch(`${ISSUER}/sessions`)
  t.equal(store.get('refresh_token'), 'leaked-refresh-2')
  await client.logout()
  const toAuth = fake.sent.filter((request) => request.url.includes('/oauth/'))
  t.same(toAuth.map((request) => request.credentials), ['omit', 'omit', 'omit'])
  t.same(toAuth.map((request) => request.headers.get(CLIENT_HEADER)), [null, null, null])
  t.equal(toAuth[1]!.form.get('refresh_token'), 'leaked-refresh-1')
  t.same(Object.fromEntries(toAuth[2]!.form), { token: 'leaked-refresh-2', token_type_hint: 'refresh_token', client_id: 'baton' })
  t.equal(store.get('refresh_token'), undefined)
})

t.test('a confidential client authenticates with HTTP Basic, form-encoded as RFC 6749 says', async (t) => {
  const fake = fakeAuthService()
  const client = createClient({ issuer: `${ISSUER}/tenant`, clientId: 'cli tool', clientSecret: 'p@ss:word', fetch: fake.fetch })
  await client.login('ada', 'pw')
  t.equal(fake.sent[0]!.url, `${ISSUER}/tenant/oauth/token`, 'endpoints sit under an issuer with a path')
  t.equal(fake.sent[0]!.headers.get('authorization'), `Basic ${Buffer.from('cli+tool:p%40ss%3Aword').toString('base64')}`)
  t.equal(fake.sent[0]!.form.get('client_id'), null, 'one authentication method only')
})

t.test('the browser entry point imports nothing but its own files', async (t) => {
  const dist = fileURLToPath(new URL('../dist/', import.meta.url))
  const seen = new Set<string>()
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return
    seen.add(file)
    const source = await readFile(`${dist}${file}`, 'utf8')
    for (const [, specifier] of source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g)) {
      t.match(specifier, /^\.\/[\w-]+\.js$/, `${file} imports ${specifier!}: a file of the package, not a Node module or another package`)
      await visit(specifier!.slice(2))
    }
  }
  await visit('index.js')
  t.ok(seen.size > 3, `${seen.size} modules reached from index.js`)
  t.notOk(seen.has('node.js'), 'node.js is not among them')
  t.ok((await readdir(dist)).includes('node.js'), 'the Node entry point is built beside it')
})
