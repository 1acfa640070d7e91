import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, loadConfig, type Config } from '../src/app.js'
import {
  AUDIENCE, ISSUER, generateTestKey, startJwksServer, testClock,
  type JwksServer, type TestClock, type TestKey
} from '../../../packages/verifier/test/helper.js'

// One set of key, token and JWKS helpers for the verifier's tests and ours.
export * from '../../../packages/verifier/test/helper.js'

/** What a request without credentials is told: Bearer or DPoP, with the proof algorithms accepted. */
export const BARE_CHALLENGES = 'Bearer realm="baton"'

export interface TestContext {
  app: FastifyInstance
  config: Readonly<Config>
  jwks: JwksServer
  /** keys[0] is Ed25519, keys[1] P-256; both published. */
  keys: TestKey[]
  clock: TestClock
}

/**
 * A resource-service verifying against a real JWKS server on a real socket,
 * with a clock the test moves. The app fetches the key set as it starts.
 */
export async function setup (t: Test, env: Record<string, string> = {}): Promise<TestContext> {
  const keys = [generateTestKey('EdDSA'), generateTestKey('ES256')]
  const jwks = await startJwksServer(keys)
  t.teardown(jwks.close)
  const clock = testClock()
  const config = loadConfig({ ISSUER, AUDIENCE, JWKS_URL: jwks.url, LOG_LEVEL: 'silent', ...env })
  const app = await buildApp(config, { now: clock.now })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, config, jwks, keys, clock }
}
