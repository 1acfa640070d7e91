import { performance } from 'node:perf_hooks'
import t from 'tap'
import { startAuth, startResource, type ResourceService } from './feed-helper.js'

// How long after a revocation's response a stateless verifier first refuses
// the token, both services on real loopback sockets. The target is p99 under
// 100 ms; the assertion is deliberately generous (a loaded CI machine), the
// figures are printed.
const TOKEN_SAMPLES = 200
const SESSION_SAMPLES = 20
const GIVE_UP_MS = 5000

/** Milliseconds from now until the resource-service first answers 401 for the token; Infinity if it never does. */
async function untilRefused (resource: ResourceService, accessToken: string): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < GIVE_UP_MS) {
    if ((await resource.me(accessToken)).status === 401) return performance.now() - start
  }
  return Number.POSITIVE_INFINITY
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!
}

function summary (samples: number[]): { p50: number, p99: number, max: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)! }
}

const format = (ms: number): string => `${ms.toFixed(2)} ms`

t.test('revocation reaches the resource-service within a blink', async (t) => {
  const auth = await startAuth(t, { LOG_LEVEL: 'silent' })
  const resource = await startResource(t, auth, { REDIS_URL: auth.redis.url })
  await resource.ready()
  await auth.register('ada')

  // RFC 7009 access-token revocations: refreshing makes each sample's token without a password hash.
  let session = await auth.login('ada')
  const tokenSamples: number[] = []
  for (let i = 0; i < TOKEN_SAMPLES; i++) {
    const refreshed = await auth.post('/oauth/token', { grant_type: 'refresh_token', refresh_token: session.refresh_token })
    session = await refreshed.json() as typeof session
    if ((await resource.me(session.access_token)).status !== 200) throw new Error('a fresh token was refused')
    const revoked = await auth.post('/oauth/revoke', { token: session.access_token })
    await revoked.arrayBuffer()
    tokenSamples.push(await untilRefused(resource, session.access_token))
  }

  // Logouts (the whole session): fewer, since each needs a login.
  const sessionSamples: number[] = []
  for (let i = 0; i < SESSION_SAMPLES; i++) {
    const login = await auth.login('ada')
    if ((await resource.me(login.access_token)).status !== 200) throw new Error('a fresh token was refused')
    const revoked = await auth.post('/oauth/revoke', { token: login.refresh_token })
    await revoked.arrayBuffer()
    sessionSamples.push(await untilRefused(resource, login.access_token))
  }

  const tokens = summary(tokenSamples)
  const sessions = summary(sessionSamples)
  t.comment(`access-token revocation → first 401, ${TOKEN_SAMPLES} samples: p50 ${format(tokens.p50)}, p99 ${format(tokens.p99)}, max ${format(tokens.max)}`)
  t.comment(`logout (session) → first 401, ${SESSION_SAMPLES} samples: p50 ${format(sessions.p50)}, p99 ${format(sessions.p99)}, max ${format(sessions.max)}`)
  t.ok(Number.isFinite(tokens.max) && Number.isFinite(sessions.max), `every revoked token was refused within ${GIVE_UP_MS} ms`)
  t.ok(tokens.p99 < 1000, `p99 ${format(tokens.p99)} is within a generous 1 s (target: 100 ms)`)
})
