import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort, startRedis } from '@baton/test-redis'
import { buildApp as buildAuth, loadConfig as loadAuthConfig } from '@baton/auth-service'
import { buildApp as buildResource, loadConfig as loadResourceConfig } from '../src/app.js'

// The proof that rotation costs no request: a real auth-service and a real
// resource-service on sockets, the resource-service knowing the issuer only by
// its JWKS URL, under steady load while the operator rotates the key twice.
//
// The resource-service may refetch for an unknown kid only once an hour here
// (JWKS_MIN_REFETCH_INTERVAL), so nothing but the protocol keeps it working:
// each new key is in the JWKS KEY_PUBLISH_AHEAD (3 s) before it signs, longer
// than the JWKS max-age (1 s) the verifier honours; an old key stays in the JWKS
// until the tokens it signed have expired (ACCESS_TOKEN_TTL 10 s + skew + reload).
// Meanwhile a stream of tokens with made-up kids keeps the verifier's key set
// at most about a second old, as an attacker could: a key that signed before
// every such fresh key set held it would be refused.

const ROTATION_ENV = {
  JWKS_MAX_AGE: '1',
  KEYRING_RELOAD_INTERVAL: '1',
  // The floor is max-age + reload = 2 s; one more second absorbs timer lag on a busy machine.
  KEY_PUBLISH_AHEAD: '3',
  KEY_ROTATION_INTERVAL: '0',
  ACCESS_TOKEN_TTL: '10',
  CLOCK_SKEW: '1'
}
const TOKEN_TTL_MS = 10_000
const RETIRE_AFTER_MS = (10 + 1 + 1) * 1000
// Half the workers refresh before every call, so a new key's first tokens
// arrive the moment it signs; the other half keep each token this long, so
// tokens of a key that stopped signing keep arriving well after the switch.
const TOKEN_REUSE_MS = 4000
const WORKERS = 6
// The schedule follows events (a key served, a key kept, a key retired), so a slow machine
// stretches it rather than breaking it; this only caps it, inside tap's 120 s per file.
const LOAD_BUDGET_MS = 80_000

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))) }
const kidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid

const CLI = fileURLToPath(new URL('./cli/baton-admin.js', import.meta.resolve('@baton/auth-service')))

async function rotateKeys (env: Record<string, string>): Promise<{ kid: string, activateAt: number }> {
  const child = spawn(process.execPath, [CLI, 'keys', 'rotate'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`rotate-keys exited ${code}: ${stderr}`)
  const line = JSON.parse(stdout) as { result: string, kid: string, activate_at: string }
  if (line.result !== 'added') throw new Error(`rotate-keys did not add a key: ${stdout}`)
  return { kid: line.kid, activateAt: Date.parse(line.activate_at) }
}

t.test('two rotations under load: every request with a valid token is served', async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const authPort = await freePort()
  const issuer = `http://127.0.0.1:${authPort}`
  // What is under test is key rotation, not Redis latency: on a machine busy with the load itself a
  // refresh may wait on Redis longer than the default one-second budget, and its 503 would say nothing here.
  const authEnv = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'rotation-load:', ISSUER: issuer, LOG_LEVEL: 'silent', REDIS_COMMAND_TIMEOUT: '10000', ...ROTATION_ENV }

  const auth = await buildAuth(loadAuthConfig(authEnv))
  t.teardown(async () => { await auth.close() })
  await auth.listen({ host: '127.0.0.1', port: authPort })
  const resource = await buildResource(loadResourceConfig({ ISSUER: issuer, LOG_LEVEL: 'silent', CLOCK_SKEW: '1', JWKS_MIN_REFETCH_INTERVAL: '3600' }))
  t.teardown(async () => { await resource.close() })
  const api = await resource.listen({ host: '127.0.0.1', port: 0 })
  for (let i = 0; i < 50 && (await fetch(`${api}/readyz`)).status !== 200; i++) await sleep(100)
  t.equal((await fetch(`${api}/readyz`)).status, 200, 'the resource-service loaded the key set over HTTP')

  const post = async (path: string, body: Record<string, string>): Promise<Response> => await fetch(`${issuer}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  const refreshTokens: string[] = []
  const loginKids = new Set<string>()
  for (let i = 0; i < WORKERS / 2; i++) {
    const username = `load${i}`
    t.equal((await post('/users', { username, password: 'correct horse battery staple' })).status, 201)
    for (let j = 0; j < 2; j++) {
      const login = await post('/oauth/token', { grant_type: 'password', username, password: 'correct horse battery staple' })
      const tokens = await login.json() as { access_token: string, refresh_token: string }
      refreshTokens.push(tokens.refresh_token)
      loginKids.add(kidOf(tokens.access_token))
    }
  }
  t.equal(loginKids.size, 1, 'one key signs before any rotation')
  const firstKid = [...loginKids][0]!

  // ---- the load: WORKERS sessions calling GET /me, refreshing their access tokens as said above.
  const served = new Map<string, number>()
  const servedWhileRetiring = new Map<string, number>()
  // Kids whose tokens a keeping worker (TOKEN_REUSE_MS) has had served.
  const keptKids = new Set<string>()
  const failures: string[] = []
  const refreshFailures: string[] = []
  let requests = 0
  let oldestTokenMs = 0
  let stop = false
  const switchedAt = new Map<string, number>()

  async function worker (index: number): Promise<void> {
    const reuseMs = index % 2 === 0 ? 0 : TOKEN_REUSE_MS
    // Staggered, so the keeping workers do not all refresh at one moment.
    await sleep(index * 300)
    let refreshToken = refreshTokens[index]!
    let accessToken = ''
    let issuedAt = 0
    while (!stop) {
      if (accessToken === '' || Date.now() - issuedAt >= reuseMs) {
        const startedAt = Date.now()
        const response = await post('/oauth/token', { grant_type: 'refresh_token', refresh_token: refreshToken })
        if (response.status !== 200) {
          refreshFailures.push(`${response.status} ${await response.text()}`)
          await sleep(100)
          continue
        }
        const body = await response.json() as { access_token: string, refresh_token: string }
        refreshToken = body.refresh_token
        accessToken = body.access_token
        issuedAt = startedAt
      }
      const kid = kidOf(accessToken)
      const age = Date.now() - issuedAt
      oldestTokenMs = Math.max(oldestTokenMs, age)
      const response = await fetch(`${api}/me`, { headers: { authorization: `Bearer ${accessToken}` } })
      await response.arrayBuffer()
      requests++
      if (response.status === 200) {
        served.set(kid, (served.get(kid) ?? 0) + 1)
        if (reuseMs > 0) keptKids.add(kid)
        // Served while another key was already signing: the key was retiring.
        const successorSince = switchedAt.get(kid)
        if (successorSince !== undefined && Date.now() > successorSince) servedWhileRetiring.set(kid, (servedWhileRetiring.get(kid) ?? 0) + 1)
      } else {
        failures.push(`${response.status} kid=${kid} age=${age}ms ${response.headers.get('www-authenticate') ?? ''}`)
      }
      // A steady load, not a saturating one: timers and the CLI keep their pace on two busy cores.
      await sleep(2)
    }
  }

  const madeUpKidStatuses = new Map<number, number>()
  async function madeUpKids (): Promise<void> {
    const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
    for (let i = 0; !stop; i++) {
      const token = `${part({ alg: 'EdDSA', typ: 'at+jwt', kid: `made-up-${i}` })}.${part({ sub: 'mallory' })}.AAAA`
      const response = await fetch(`${api}/me`, { headers: { authorization: `Bearer ${token}` } })
      await response.arrayBuffer()
      madeUpKidStatuses.set(response.status, (madeUpKidStatuses.get(response.status) ?? 0) + 1)
      await sleep(100)
    }
  }

  const loadStartedAt = Date.now()
  const workers = [...Array.from({ length: WORKERS }, async (_, index) => { await worker(index) }), madeUpKids()]
  const jwksKids = async (): Promise<string[]> => ((await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid)
  let second: { kid: string, activateAt: number } | undefined
  let first: { kid: string, activateAt: number } | undefined
  let firstRetiredSeen = false
  // Each step waits for what the next one needs, within the load's budget; the assertions below say what did not happen.
  const until = async (check: () => boolean): Promise<void> => {
    while (!check() && Date.now() < loadStartedAt + LOAD_BUDGET_MS) await sleep(20)
  }
  try {
    await until(() => (served.get(firstKid) ?? 0) >= 20)
    first = await rotateKeys(authEnv)
    switchedAt.set(firstKid, first.activateAt)
    t.ok((await jwksKids()).includes(firstKid), 'the first key is published while the second is pending')
    // A keeping worker holds a token of the second key: it keeps one until after the third key
    // signs, since it can only refresh to the second key until then.
    const secondKid = first.kid
    await until(() => keptKids.has(secondKid))

    second = await rotateKeys(authEnv)
    switchedAt.set(first.kid, second.activateAt)

    // Keep the load on past the first key's retirement, until it has left the JWKS and the
    // third key's tokens, and the second's after it stopped signing, have been served.
    const firstRetiresAt = first.activateAt + RETIRE_AFTER_MS
    const thirdKid = second.kid
    const seenAll = (): boolean => firstRetiredSeen && served.has(thirdKid) && servedWhileRetiring.has(secondKid)
    while ((Date.now() < firstRetiresAt + 1000 || !seenAll()) && Date.now() < loadStartedAt + LOAD_BUDGET_MS) {
      if (!(await jwksKids()).includes(firstKid)) firstRetiredSeen = true
      await sleep(250)
    }
  } finally {
    stop = true
    await Promise.all(workers)
  }
  // A slow machine may end the load first; the key must leave all the same.
  while (!firstRetiredSeen && Date.now() < first.activateAt + RETIRE_AFTER_MS + 3000) {
    if (!(await jwksKids()).includes(firstKid)) firstRetiredSeen = true
    else await sleep(100)
  }

  const kids = [firstKid, first.kid, second.kid]
  const at = (ms: number): string => `${((ms - loadStartedAt) / 1000).toFixed(1)} s`
  t.comment(`timeline: key 2 signs at ${at(first.activateAt)}, key 3 at ${at(second.activateAt)}, key 1 retires at ${at(first.activateAt + RETIRE_AFTER_MS)}`)
  t.comment(`${requests} GET /me in ${Date.now() - loadStartedAt} ms; served by kid: ${kids.map((kid) => `${kid.slice(0, 8)}…=${served.get(kid) ?? 0} (after it stopped signing: ${servedWhileRetiring.get(kid) ?? 0})`).join(', ')}`)
  t.same(failures.slice(0, 10), [], 'no request with a valid token was refused')
  t.equal(failures.length, 0)
  t.same(refreshFailures.slice(0, 10), [], 'every refresh succeeded')
  t.same([...madeUpKidStatuses.keys()], [401], `tokens with made-up kids: 401, as expected (${madeUpKidStatuses.get(401) ?? 0})`)
  t.ok(oldestTokenMs < TOKEN_TTL_MS - 2000, `tokens were valid when presented (oldest ${oldestTokenMs} ms of ${TOKEN_TTL_MS})`)
  t.equal(new Set(kids).size, 3)
  for (const [index, kid] of kids.entries()) t.ok((served.get(kid) ?? 0) > 0, `tokens of key ${index + 1} were served`)
  t.ok((servedWhileRetiring.get(firstKid) ?? 0) > 0, 'tokens of the first key were served after it stopped signing')
  t.ok((servedWhileRetiring.get(first.kid) ?? 0) > 0, 'tokens of the second key were served after it stopped signing')
  t.ok(firstRetiredSeen, 'the first key left the JWKS once its tokens had expired')
  t.same((await jwksKids()).sort(), [first.kid, second.kid].sort())
})
