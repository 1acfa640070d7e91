// The leaked-key drill, end to end: two auth-service instances and two
// resource-services (one following the revocation feed, one knowing only the
// JWKS) on real sockets over one Redis, and `baton-admin keys revoke` run as
// the operator runs it, in a process of its own.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { PASSWORD, eventually, startAuth, startResource, type AuthService, type Tokens } from './feed-helper.js'

const CLI = fileURLToPath(new URL('./cli/baton-admin.js', import.meta.resolve('@baton/auth-service')))

// Instances reread the keyring only every 300 s: within the test they learn of the revocation from the command alone.
// The JWKS may be cached 5 s, so a verifier without the feed fetches it again soon after it meets an unknown kid.
const KEYS_ENV = { KEYRING_RELOAD_INTERVAL: '300', JWKS_MAX_AGE: '5', KEY_PUBLISH_AHEAD: '305', KEY_ROTATION_INTERVAL: '0' }

async function revokeKey (env: Record<string, string>, kid: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [CLI, 'keys', 'revoke', kid, '--reason', 'drill'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`baton-admin keys revoke exited ${code}: ${stderr}`)
  return JSON.parse(stdout) as Record<string, unknown>
}

const kidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid

async function refreshed (auth: AuthService, tokens: Tokens): Promise<Tokens> {
  const response = await auth.post('/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
  if (response.status !== 200) throw new Error(`refresh: ${response.status} ${await response.text()}`)
  return await response.json() as Tokens
}

async function jwksKids (auth: AuthService): Promise<string[]> {
  return ((await (await fetch(`${auth.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid)
}

t.test('a leaked signing key: its tokens refused, logins and sessions carry on under a new key', async (t) => {
  const first = await startAuth(t, KEYS_ENV)
  // Same Redis, same issuer: a second instance behind the same load balancer.
  const second = await startAuth(t, { ...KEYS_ENV, ISSUER: first.url }, { redis: first.redis })
  // Both fetched the key set moments ago, at start: an unknown kid may only be
  // fetched again after JWKS_MIN_REFETCH_INTERVAL (10 s by default), which a
  // long-running verifier has long passed when a key is revoked.
  const following = await startResource(t, first, { REDIS_URL: first.redis.url, JWKS_MIN_REFETCH_INTERVAL: '1' })
  const jwksOnly = await startResource(t, first, { JWKS_MIN_REFETCH_INTERVAL: '1' })
  await Promise.all([following.ready(), jwksOnly.ready()])

  await first.register('ada')
  await first.register('bob')
  const ada = await first.login('ada')
  const bob = await second.login('bob')
  const leaked = kidOf(ada.access_token)
  t.equal(kidOf(bob.access_token), leaked, 'both instances sign with the one key')
  for (const resource of [following, jwksOnly]) t.equal((await resource.me(ada.access_token)).status, 200)

  const revoked = await revokeKey({ REDIS_URL: first.redis.url, ISSUER: first.url, LOG_LEVEL: 'silent', ...KEYS_ENV }, leaked)
  const revokedAt = Date.now()
  t.match(revoked, { result: 'replaced', kid: leaked, signer: String })
  const next = revoked.signer as string

  // Following the feed: refused within a second of the command.
  const refusedInTime = await eventually(async () => (await following.me(ada.access_token)).status === 401, 1000)
  t.ok(refusedInTime, `the resource-service following the feed refuses the leaked key's token within 1 s (${Date.now() - revokedAt} ms)`)
  t.match(await following.me(bob.access_token), { status: 401, challenge: /error="invalid_token"/ }, 'every token that key signed')

  // Every instance stopped signing with it, long before its next reload.
  t.ok(await eventually(async () => (await jwksKids(first)).join() === next && (await jwksKids(second)).join() === next, 5000), 'both instances publish only the new key')
  const adaAgain = await second.login('ada')
  t.equal(kidOf(adaAgain.access_token), next, 'a new login gets a token from the new key')
  t.equal((await following.me(adaAgain.access_token)).status, 200, 'which the resource-service following the feed accepts')

  // Without the feed: the leaked key's tokens are refused once the key set is fetched again, which the new key's first token brings about.
  t.ok(await eventually(async () => (await jwksOnly.me(adaAgain.access_token)).status === 200, 10_000), 'the JWKS-only resource-service fetches the new key')
  t.match(await jwksOnly.me(ada.access_token), { status: 401, challenge: /error="invalid_token"/ }, 'and from then on refuses the leaked key\'s tokens')
  t.equal((await jwksOnly.me(bob.access_token)).status, 401)

  // Nothing else is interrupted: sessions made before the revocation refresh into the new key.
  const bobNext = await refreshed(first, bob)
  const adaNext = await refreshed(second, ada)
  for (const tokens of [bobNext, adaNext]) {
    t.equal(kidOf(tokens.access_token), next)
    for (const resource of [following, jwksOnly]) t.equal((await resource.me(tokens.access_token)).status, 200)
  }
  t.equal((await first.post('/oauth/token', { grant_type: 'password', username: 'bob', password: PASSWORD })).status, 200, 'logins keep working on every instance')
})
