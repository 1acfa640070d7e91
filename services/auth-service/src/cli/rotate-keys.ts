/**
 * `pnpm --dir services/auth-service rotate-keys`: adds a pending signing key
 * to the generated keyring in Redis, configured by the same environment as
 * the service. Running instances publish it within KEYRING_RELOAD_INTERVAL
 * and sign with it KEY_PUBLISH_AHEAD after now; the active key then retires
 * by itself. Prints one JSON line and exits 0, or one line on stderr and
 * exits 1 (error) or 2 (refused: operator-supplied keys).
 */
import { ConfigError, createRedisClient, describeRedisTarget } from '@baton/service-kit'
import { loadConfig, type Config } from '../config.js'
import { redisKeys } from '../redis-keys.js'
import { describeKey, keyStates, rotateSigningKey, rotationPolicy } from '../key-rotation.js'

function fail (code: number, message: string): never {
  process.stderr.write(`rotate-keys: ${message}\n`)
  process.exit(code)
}

let config: Config
try {
  config = loadConfig(process.env)
} catch (error) {
  if (error instanceof ConfigError) fail(1, `invalid configuration: ${error.message}`)
  throw error
}

if (config.SIGNING_KEY !== undefined) {
  fail(2, 'refused: the signing keys come from SIGNING_KEY / SIGNING_KEY_FILE, not Redis. ' +
    'Rotate them there: add the new key after the current one, wait KEY_PUBLISH_AHEAD, move it first, ' +
    'remove the old one after ACCESS_TOKEN_TTL + CLOCK_SKEW (see the README, "Key rotation")')
}

// The service's own client, so a cluster or Sentinel works here too; a deadline, not a retry count, bounds the wait.
const redis = createRedisClient(config.REDIS, { commandTimeoutMs: Math.max(config.REDIS_COMMAND_TIMEOUT, 2000) })
redis.on('error', () => {})
const deadline = setTimeout(() => { fail(1, `could not reach Redis at ${describeRedisTarget(config.REDIS)} within 10 s`) }, 10_000)
deadline.unref()

try {
  await redis.connect()
  const policy = rotationPolicy(config)
  const now = Date.now()
  const result = await rotateSigningKey(redis, redisKeys(config.REDIS_KEY_PREFIX).signingKeys, policy, 'operator', now)
  const keys = keyStates(result.keys, now, policy.retireAfterMs).map(describeKey)
  if (result.status === 'full') {
    fail(1, `the keyring already holds ${result.keys.length} keys; wait until a retiring key has retired`)
  }
  const line: Record<string, unknown> = { result: result.status }
  if (result.key !== undefined) {
    line.kid = result.key.kid
    line.activate_at = new Date(result.key.activate_at).toISOString()
  }
  if (result.status === 'pending') {
    const pending = keys.find((key) => key.state === 'pending')
    line.reason = 'a key is pending already; it signs from its activate_at'
    line.kid = pending?.kid
    line.activate_at = pending?.activate_at
  }
  line.keys = keys
  process.stdout.write(`${JSON.stringify(line)}\n`)
} catch (error) {
  fail(1, `could not rotate the keys in Redis at ${describeRedisTarget(config.REDIS)}: ${(error as Error).message}`)
} finally {
  redis.disconnect()
}
