// @ts-check
import js from '@eslint/js'
import { defineConfig } from 'eslint/config'
import globals from 'globals'
import tseslint from 'typescript-eslint'

const AUTH = 'services/auth-service/src'

// What the auth-service's domain (core/) and Redis layer (redis/) may not
// import: the HTTP framework and the HTTP layer built on it. Keeping them out
// is what lets the grants and stores run under any transport, or none.
const FASTIFY = {
  regex: '^(fastify|fastify-plugin|@fastify/.+|@baton/verifier/fastify)(/.*)?$',
  message: 'core/ and redis/ stay free of Fastify; wire it up in http/.'
}
const SERVICE_KIT = {
  // Its entry point loads Fastify, so a value import drags the framework in;
  // its types (RedisClient, CommonConfig) are erased at build and cost nothing.
  // Its `redis` subpath imports only ioredis and the config readers, so it is
  // the one part the domain may load.
  regex: '^@baton/service-kit(?!/redis$)(/.*)?$',
  allowTypeImports: true,
  message: '@baton/service-kit loads Fastify; core/ and redis/ may import its types only.'
}
/** A relative import of the sibling folder `name` (or `name.js`) of src/. */
const layer = (/** @type {string} */ name, /** @type {string} */ message) =>
  ({ regex: `^(\\.\\./)+${name}(/|\\.js$|$)`, message })

/**
 * What the folder `folder` of src/ may not import: static imports (import,
 * export from) and dynamic import() with a literal specifier, which loads a
 * module just the same.
 * @param {string} folder
 * @param {Array<{ regex: string, message: string, allowTypeImports?: boolean }>} refused
 * @returns {import('eslint').Linter.Config}
 */
const layerBlock = (folder, refused) => ({
  name: `baton/layering/${folder}`,
  files: [`${AUTH}/${folder}/**/*.ts`],
  plugins: { '@typescript-eslint': tseslint.plugin },
  languageOptions: { parser: tseslint.parser },
  rules: {
    'no-restricted-imports': 'off',
    '@typescript-eslint/no-restricted-imports': ['error', { patterns: refused }],
    'no-restricted-syntax': ['error', ...refused.map(({ regex, message }) => ({
      // esquery reads a regex up to the first slash, so slashes are spelt \u002F.
      selector: `ImportExpression[source.value=/${regex.replaceAll('/', '\\u002F')}/]`,
      message
    }))]
  }
})

/**
 * The auth-service's layering, exported on its own so a test can run it
 * without the other rules.
 */
export const layering = defineConfig(
  layerBlock('core', [
    FASTIFY,
    SERVICE_KIT,
    layer('http', 'core/ must not reach up into http/; http/ calls core/ with what it needs.')
  ]),
  layerBlock('redis', [
    FASTIFY,
    SERVICE_KIT,
    layer('http', 'redis/ must not reach up into http/.'),
    layer('core', 'redis/ sits below core/: core/ calls into redis/, never the other way.')
  ])
)

export default defineConfig(
  {
    name: 'baton/ignores',
    // docs/examples import the published packages and are run by the
    // verifier's pack test; the rest is build output and tool state.
    ignores: ['**/dist/', 'docs/', 'bench/results/', '.tap/', 'coverage/']
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    name: 'baton/node',
    languageOptions: { globals: globals.node },
    // A directive that silences nothing hides what the next change breaks.
    linterOptions: { reportUnusedDisableDirectives: 'error' }
  },
  {
    // The demo page's script runs in a browser, as an ES module.
    name: 'baton/browser',
    files: ['demo/public/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' }
  },
  {
    name: 'baton/house-rules',
    rules: {
      // `catch {}` is how a polling loop or a best-effort cleanup says a
      // failed attempt changes nothing; every other empty block is a mistake.
      'no-empty': ['error', { allowEmptyCatch: true }],
      // A leading underscore names what is there only to be left out: a
      // property dropped by a rest destructuring, a parameter a signature needs.
      '@typescript-eslint/no-unused-vars': ['error', {
        argsIgnorePattern: '^_',
        varsIgnorePattern: '^_',
        caughtErrorsIgnorePattern: '^_',
        destructuredArrayIgnorePattern: '^_',
        ignoreRestSiblings: true
      }],
      // A `new` kept only for its side effect (a metric registering itself)
      // says so with a directive where it happens.
      'no-new': 'error'
    }
  },
  ...layering
)
