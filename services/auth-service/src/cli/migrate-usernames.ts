/**
 * `pnpm --dir services/auth-service migrate-usernames`: gives every account
 * registered before RFC 8265 case folding its case-folded name key (see
 * docs/usernames.md), configured by the same environment as the service.
 * Prints one JSON line `{scanned, added, conflicts}` and exits 0, or one line
 * on stderr and exits 1.
 */
import { ConfigError, createRedisClient, describeRedisTarget } from '@baton/service-kit'
import { loadConfig, type Config } from '../config.js'
import { redisKeys } from '../redis/keys.js'
import { addCanonicalUsernameKeys } from '../core/accounts/username-migration.js'

function fail (message: string): never {
  process.stderr.write(`migrate-usernames: ${message}\n`)
  process.exit(1)
}

let config: Config
try {
  config = loadConfig(process.env)
} catch (error) {
  if (error instanceof ConfigError) fail(`invalid configuration: ${error.message}`)
  throw error
}

const redis = createRedisClient(config.REDIS, { commandTimeoutMs: Math.max(config.REDIS_COMMAND_TIMEOUT, 2000) })
redis.on('error', () => {})
const connecting = setTimeout(() => { fail(`could not reach Redis at ${describeRedisTarget(config.REDIS)} within 10 s`) }, 10_000)
try {
  await redis.connect()
  clearTimeout(connecting)
  const result = await addCanonicalUsernameKeys(redis, redisKeys(config.REDIS_KEY_PREFIX))
  process.stdout.write(`${JSON.stringify(result)}\n`)
} catch (error) {
  fail(`could not migrate the username keys in Redis at ${describeRedisTarget(config.REDIS)}: ${(error as Error).message}`)
} finally {
  redis.disconnect()
}
