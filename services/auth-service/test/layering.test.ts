// The auth-service's domain (src/core) and Redis layer (src/redis) must stand
// without Fastify or the HTTP layer, and the Redis layer below the domain. The
// lint rule that says so runs in CI with every other rule; these cases show it
// catches each way in, and lets through what those layers do need.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import { layering } from '../../../eslint.config.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const SRC = 'services/auth-service/src'
const LAYER_RULES = new Set(['@typescript-eslint/no-restricted-imports', 'no-restricted-syntax'])

// The repository's own configuration, as `pnpm lint` runs it.
const configured = new ESLint({ cwd: ROOT })

async function layerErrors (file: string, code: string): Promise<string[]> {
  const [result] = await configured.lintText(`${code}\n`, { filePath: `${ROOT}${SRC}/${file}` })
  const messages = result?.messages ?? []
  const fatal = messages.find((message) => message.fatal === true)
  if (fatal !== undefined) throw new Error(`${file}: ${fatal.message}`)
  return messages.filter((message) => LAYER_RULES.has(message.ruleId ?? '') && message.severity === 2).map((message) => message.message)
}

const refused: Array<[file: string, code: string]> = [
  ['core/x.ts', "import Fastify from 'fastify'"],
  ['core/x.ts', "import type { FastifyRequest } from 'fastify'"],
  ['core/x.ts', "import fp from 'fastify-plugin'"],
  ['core/x.ts', "import cookie from '@fastify/cookie'"],
  ['core/x.ts', "import { fastifyVerifier } from '@baton/verifier/fastify'"],
  ['core/x.ts', "import { counter } from '@baton/service-kit'"],
  ['redis/x.ts', "import { runServer } from '@baton/service-kit/server'"],
  ['core/x.ts', "import { tokenRoute } from '../http/routes/token.js'"],
  ['core/x.ts', "import { http } from '../http.js'"],
  ['core/x.ts', "export { noStore } from '../http/no-store.js'"],
  ['core/grants/password.ts', "import type { TokenBody } from '../../http/schemas.js'"],
  ['core/grants/password.ts', "const routes = await import('../../http/routes/token.js')"],
  ['core/x.ts', "const fastify = await import('fastify')"],
  ['redis/x.ts', "import { newId } from '../core/ids.js'"],
  ['redis/scripts/x.ts', "import type { Session } from '../../core/sessions/store.js'"],
  ['redis/x.ts', "import Fastify from 'fastify'"],
  ['redis/x.ts', "import { redisPlugin } from '../http/plugins/redis.js'"]
]

for (const [file, code] of refused) {
  t.test(`${file} may not: ${code}`, async (t) => {
    t.equal((await layerErrors(file, code)).length, 1, 'refused')
  })
}

const allowed: Array<[file: string, code: string]> = [
  ['core/x.ts', "import { scripts } from '../redis/scripts.js'"],
  ['core/x.ts', "import { Redis } from 'ioredis'"],
  ['core/x.ts', "import type { RedisClient } from '@baton/service-kit'"],
  ['core/x.ts', "import { type RedisClient } from '@baton/service-kit'"],
  ['core/x.ts', "import { BatonError } from '@baton/tokens'"],
  ['redis/x.ts', "import { isClusterClient } from '@baton/service-kit/redis'"],
  ['core/grants/password.ts', "import { newId } from '../ids.js'"],
  ['core/grants/password.ts', "import { audit } from '../../observability/audit.js'"],
  ['redis/x.ts', "import { readFile } from 'node:fs/promises'"],
  ['http/routes/token.ts', "import Fastify from 'fastify'\nimport { passwordGrant } from '../../core/grants/password.js'"],
  ['observability/metrics.ts', "import fp from 'fastify-plugin'"]
]

for (const [file, code] of allowed) {
  t.test(`${file} may: ${code.replaceAll('\n', '; ')}`, async (t) => {
    t.same(await layerErrors(file, code), [], 'let through')
  })
}

t.test('the auth-service keeps its layering', async (t) => {
  // Only the layer rule, so the answer is about layering alone.
  const eslint = new ESLint({ cwd: ROOT, overrideConfigFile: true, overrideConfig: [...layering, { linterOptions: { reportUnusedDisableDirectives: 'off' } }], errorOnUnmatchedPattern: false })
  const results = await eslint.lintFiles([SRC])
  t.comment(`${results.length} files in core/ and redis/`)
  t.same(results.flatMap((result) => result.messages.map((message) => `${result.filePath}:${message.line} ${message.message}`)), [])
})
