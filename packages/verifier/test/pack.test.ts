// The packages as a user gets them: packed with `pnpm pack`, installed with
// npm into fresh directories outside the workspace, and the examples of
// docs/protect-your-api.md run there, as written, against a real
// auth-service with its own Redis. An Express user installs no Fastify; a
// CLI built on @baton/client keeps its session in a file between runs.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { freePort, startRedis } from '@baton/test-redis'

// Installing from the registry (or the npm cache) and starting services takes a while on a busy machine.
t.setTimeout(900_000)

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../../', import.meta.url))
const examples = join(root, 'docs/examples')
const PASSWORD = 'correct horse battery staple'

/** Packs a workspace package into `destination`; returns the tarball's path. */
async function pack (name: string, destination: string): Promise<string> {
  const { stdout } = await run('npx', ['-y', 'pnpm@12', 'pack', '--pack-destination', destination], { cwd: join(root, 'packages', name), timeout: 180_000 })
  const tarball = stdout.trim().split('\n').at(-1)!.trim()
  if (!tarball.endsWith('.tgz')) throw new Error(`pnpm pack printed no tarball: ${stdout}`)
  return tarball
}

async function tarList (tarball: string): Promise<string[]> {
  return (await run('tar', ['-tzf', tarball])).stdout.trim().split('\n')
}

async function manifestOf (tarball: string): Promise<Record<string, unknown>> {
  return JSON.parse((await run('tar', ['-xOzf', tarball, 'package/package.json'])).stdout) as Record<string, unknown>
}

/** A fresh directory with these packages installed by npm, as a user would. */
async function install (parent: string, name: string, packages: string[]): Promise<string> {
  const dir = join(parent, name)
  await mkdir(dir)
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...packages], { cwd: dir, timeout: 600_000 })
  return dir
}

/** Type-checks `source` in `dir` against the packages installed there, as a TypeScript user's build would. */
async function typecheck (dir: string, source: string[], compilerOptions: Record<string, unknown> = {}): Promise<unknown> {
  await writeFile(join(dir, 'check.ts'), source.join('\n'))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(root, 'node_modules/@types')], ...compilerOptions },
    files: ['check.ts']
  }))
  return await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { timeout: 120_000 })
}

/** Polls until `check` holds; throws after `timeoutMs`. */
async function until (check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Starts `node script` in `cwd` with `env`; killed with the test; its output kept for failure messages. */
function start (t: Test, script: string, cwd: string, env: Record<string, string>): { child: ChildProcess, output: () => string } {
  const child = spawn(process.execPath, [script], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => { child.kill('SIGKILL') })
  return { child, output: () => output.slice(-4000) }
}

interface Answer { status: number, challenge: string | null, body: Record<string, unknown> }

async function get (url: string, authorization?: string): Promise<Answer> {
  const response = await fetch(url, { headers: authorization === undefined ? {} : { authorization } })
  const text = await response.text()
  let body: Record<string, unknown> = {}
  try { body = JSON.parse(text) as Record<string, unknown> } catch {}
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body }
}

interface Auth {
  url: string
  redisUrl: string
  /** Registers a user and logs in: an access token with `scope`, and the refresh token. */
  login: (username: string, scope: string) => Promise<{ access_token: string, refresh_token: string }>
  logout: (refreshToken: string) => Promise<void>
}

/** The auth-service as its own process (dist/server.js), on a private Redis. */
async function startAuthService (t: Test): Promise<Auth> {
  const redis = await startRedis()
  t.teardown(async () => { await redis.stop() })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const { output } = start(t, join(root, 'services/auth-service/dist/server.js'), root, {
    PORT: String(port), ISSUER: url, REDIS_URL: redis.url, DEFAULT_SCOPES: 'profile reports:read', LOG_LEVEL: 'warn', REFRESH_REUSE_GRACE: '0'
  })
  await until(async () => (await fetch(`${url}/readyz`)).status === 200, `the auth-service (${output()})`)
  const post = async (path: string, body: Record<string, string>): Promise<Response> =>
    await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const registered = new Set<string>()
  return {
    url,
    redisUrl: redis.url,
    login: async (username, scope) => {
      if (!registered.has(username)) {
        const response = await post('/users', { username, password: PASSWORD })
        if (response.status !== 201) throw new Error(`register ${username}: ${response.status}`)
        registered.add(username)
      }
      const response = await post('/oauth/token', { grant_type: 'password', username, password: PASSWORD, scope })
      if (response.status !== 200) throw new Error(`login ${username}: ${response.status} ${await response.text()}`)
      return await response.json() as { access_token: string, refresh_token: string }
    },
    logout: async (refreshToken) => {
      const response = await post('/oauth/revoke', { token: refreshToken })
      await response.arrayBuffer()
      if (response.status !== 200) throw new Error(`logout: ${response.status}`)
    }
  }
}

/** Copies an example from docs/examples into `dir` unchanged and runs it there; resolves once it answers. */
async function runExample (t: Test, example: string, dir: string, env: Record<string, string>): Promise<string> {
  await copyFile(join(examples, example), join(dir, example))
  const port = await freePort()
  const { child, output } = start(t, example, dir, { PORT: String(port), ...env })
  let exited = false
  child.once('exit', () => { exited = true })
  const url = `http://127.0.0.1:${port}`
  await until(async () => {
    if (exited) throw new Error(`${example} exited: ${output()}`)
    return (await fetch(`${url}/me`)).status === 401
  }, `${example} (${output()})`)
  return url
}

function tamper (token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string]
  return `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`
}

/** What the contract promises a client of a route Baton protects. */
async function assertBearerAnswers (t: Test, url: string, auth: Auth, username: string, options: { reports?: boolean, baton?: boolean } = {}): Promise<void> {
  const full = await auth.login(username, 'profile reports:read')
  const profile = await auth.login(username, 'profile')

  const valid = await get(`${url}/me`, `Bearer ${full.access_token}`)
  t.equal(valid.status, 200, 'a valid token: 200')
  t.equal(valid.body.scope, 'profile reports:read', 'with its claims')

  const none = await get(`${url}/me`)
  t.equal(none.status, 401, 'no token: 401')
  // Stock libraries may add challenges of their own (express-oauth2-jwt-bearer offers DPoP).
  t.match(none.challenge, options.baton === true ? /^Bearer realm="baton"$/ : /^Bearer realm="[^"]*"/, 'a bare challenge')
  t.notOk('error' in none.body, 'and no error code')

  const bad = await get(`${url}/me`, `Bearer ${tamper(full.access_token)}`)
  t.equal(bad.status, 401, 'a bad token: 401')
  t.match(bad.challenge, /^Bearer realm="[^"]*", error="invalid_token"/)

  if (options.baton === true) {
    const malformed = await get(`${url}/me`, 'Bearer two tokens')
    t.equal(malformed.status, 400, 'a malformed header: 400')
    t.equal(malformed.body.error, 'invalid_request')
    t.match(malformed.challenge, /error="invalid_request"/)
    t.equal(bad.body.error, 'invalid_token')
  }
  if (options.reports !== false) {
    const forbidden = await get(`${url}/reports`, `Bearer ${profile.access_token}`)
    t.equal(forbidden.status, 403, 'a token without the scope: 403')
    t.match(forbidden.challenge, /error="insufficient_scope"/)
    if (options.baton === true) t.equal(forbidden.body.error, 'insufficient_scope')
    t.equal((await get(`${url}/reports`, `Bearer ${full.access_token}`)).status, 200, 'with it: 200')
  }
}

t.test('packed, installed with npm outside the workspace, the examples protect Express, Fastify and node:http apps', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'baton-pack-'))
  t.teardown(async () => { await rm(parent, { recursive: true, force: true }) })
  const tarballs = { tokens: await pack('tokens', parent), verifier: await pack('verifier', parent), client: await pack('client', parent) }

  await t.test('the packed manifests are publishable', async (t) => {
    for (const [name, tarball] of Object.entries(tarballs)) {
      const manifest = await manifestOf(tarball)
      t.notOk(manifest.private, `${name}: not private`)
      t.match(manifest.version, /^\d+\.\d+\.\d+/, `${name}: versioned`)
      t.notMatch(JSON.stringify(manifest), /workspace:/, `${name}: no workspace: protocol`)
      t.match(manifest.exports, { '.': { types: String, default: String } }, `${name}: exports with types`)
      const files = await tarList(tarball)
      t.ok(files.includes('package/README.md'), `${name}: a README`)
      t.same(files.filter((file) => !/^package\/(README\.md|package\.json|dist\/.*\.(js|d\.ts))$/.test(file)), [], `${name}: nothing but the README, the manifest and dist's .js and .d.ts`)
      for (const file of files.filter((file) => file.endsWith('.js'))) {
        t.ok(files.includes(file.replace(/\.js$/, '.d.ts')), `${name}: types for ${file}`)
        t.ok(existsSync(join(root, 'packages', name, file.replace(/^package\/dist\//, 'src/').replace(/\.js$/, '.ts'))), `${name}: ${file} has a source (not a stale build)`)
      }
    }
    const verifier = await manifestOf(tarballs.verifier)
    t.match(verifier.dependencies, { '@baton/tokens': '^0.1.0' }, 'it depends on the published @baton/tokens, and on no private package')
    const dependencies = Object.keys(verifier.dependencies as object)
    t.same(dependencies.filter((name) => ['fastify', 'express', 'ioredis', 'prom-client', '@baton/service-kit'].includes(name)), [], 'no framework, Redis client or private package among its dependencies')
    t.same(verifier.peerDependenciesMeta, { fastify: { optional: true }, ioredis: { optional: true } }, 'the framework and the Redis client are the user\'s, and optional')
    t.match(verifier.exports, { './fastify': Object, './express': Object, './node': Object, './feed': Object, './dpop': Object })
    const client = await manifestOf(tarballs.client)
    t.same(client.dependencies ?? {}, {}, 'the client depends on nothing: browsers load it as it is')
    t.match(client.exports, { './node': Object })
  })

  const auth = await startAuthService(t)
  const env = { ISSUER: auth.url, REDIS_URL: auth.redisUrl }

  await t.test('Express: installed without Fastify; the Express, node:http and feed examples', async (t) => {
    const dir = await install(parent, 'express-app', [tarballs.tokens, tarballs.verifier, 'express@5', '@types/express@5', 'ioredis@5'])
    t.notOk(existsSync(join(dir, 'node_modules/fastify')), 'no Fastify installed')
    t.notOk(existsSync(join(dir, 'node_modules/prom-client')), 'no prom-client installed')

    await t.resolves(typecheck(dir, [
      "import express from 'express'",
      "import { createVerifier, VerifierError, renderError, type AccessTokenClaims } from '@baton/verifier'",
      "import { expressVerifier } from '@baton/verifier/express'",
      "import { nodeVerifier } from '@baton/verifier/node'",
      "import { RevocationFeed } from '@baton/verifier/feed'",
      "import { checkDpopProof, createMemoryReplayCache, type DpopProof } from '@baton/verifier/dpop'",
      "import { Redis } from 'ioredis'",
      "const feed = new RevocationFeed({ client: new Redis({ lazyConnect: true }) })",
      "const verifier = createVerifier({ issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json', isRevoked: feed.isRevoked })",
      'export const claims: Promise<AccessTokenClaims> = verifier.verify(\'token\')',
      'export const refused = (error: unknown): number | undefined => error instanceof VerifierError ? error.status : renderError(error).status',
      'export const node = nodeVerifier({ verifier }).authenticate',
      "export const proof: Promise<DpopProof> = checkDpopProof('proof', { method: 'GET', url: 'https://api.example.com/me', replay: createMemoryReplayCache() })",
      "export const bound = expressVerifier({ verifier: createVerifier({ issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json', dpop: true }), publicUrl: 'https://api.example.com' })",
      'const baton = expressVerifier({ verifier, onRefused: (error) => { console.log(error.reason) } })',
      'const app = express()',
      "app.get('/reports', baton.requireScope('reports:read'), (req, res) => { res.json({ sub: req.auth?.sub, scope: req.auth?.scope }) })",
      ''
    ]), 'TypeScript finds the types of every entry point, and Express\'s req.auth')

    for (const example of ['express.mjs', 'node-http.mjs']) {
      await t.test(example, async (t) => {
        await assertBearerAnswers(t, await runExample(t, example, dir, env), auth, `user-${example.replace(/\W/g, '')}`, { baton: true })
      })
    }

    await t.test('express-feed.mjs: refused within 100 ms of a logout', async (t) => {
      const url = await runExample(t, 'express-feed.mjs', dir, env)
      const samples: number[] = []
      for (let i = 0; i < 5; i++) {
        const session = await auth.login('feed-user', 'profile')
        t.equal((await get(`${url}/me`, `Bearer ${session.access_token}`)).status, 200, 'valid before the logout')
        await auth.logout(session.refresh_token)
        const started = performance.now()
        let answer: Answer
        do answer = await get(`${url}/me`, `Bearer ${session.access_token}`)
        while (answer.status === 200 && performance.now() - started < 5000)
        samples.push(performance.now() - started)
        t.equal(answer.status, 401, 'refused after the logout')
        t.match(answer.challenge, /error="invalid_token", error_description="the access token has been revoked"/)
      }
      const sorted = [...samples].sort((a, b) => a - b)
      t.comment(`logout → first 401: ${sorted.map((ms) => ms.toFixed(1)).join(', ')} ms`)
      t.ok(sorted[2]! < 100, `the median logout was refused within 100 ms (${sorted[2]!.toFixed(1)} ms)`)
      t.ok(sorted[4]! < 1000, `every logout was refused within a second (slowest ${sorted[4]!.toFixed(1)} ms, on a busy machine)`)
    })
  })

  await t.test('Fastify: the Fastify example', async (t) => {
    const dir = await install(parent, 'fastify-app', [tarballs.tokens, tarballs.verifier, 'fastify@5'])
    await t.resolves(typecheck(dir, [
      "import Fastify from 'fastify'",
      "import { verifierPlugin } from '@baton/verifier/fastify'",
      'const app = Fastify()',
      "await app.register(verifierPlugin, { issuer: 'https://auth.example.com', audience: 'baton-api', jwksUri: 'https://auth.example.com/.well-known/jwks.json' })",
      "app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.auth.sub }))",
      "app.get('/reports', { preHandler: app.requireScope('reports:read') }, async (request) => ({ scope: request.auth.scope }))",
      'export {}',
      ''
    ]), 'TypeScript sees the hooks and request.auth')
    await assertBearerAnswers(t, await runExample(t, 'fastify.mjs', dir, env), auth, 'user-fastify', { baton: true })
  })

  await t.test('stock libraries verify Baton\'s tokens: jose and express-oauth2-jwt-bearer', async (t) => {
    const dir = await install(parent, 'stock-app', ['jose@6', 'express@5', 'express-oauth2-jwt-bearer@1'])
    await t.test('jose.mjs', async (t) => {
      await assertBearerAnswers(t, await runExample(t, 'jose.mjs', dir, env), auth, 'user-jose', { reports: false })
    })
    await t.test('express-oauth2-jwt-bearer.mjs', async (t) => {
      await assertBearerAnswers(t, await runExample(t, 'express-oauth2-jwt-bearer.mjs', dir, env), auth, 'user-auth0')
    })
  })

  await t.test('the client: installed alone, typed for browsers without Node types; a CLI logs in, comes back in a new process, logs out', async (t) => {
    const dir = await install(parent, 'client-app', [tarballs.client])
    t.same(await readdir(join(dir, 'node_modules')).then((names) => names.filter((name) => !name.startsWith('.'))), ['@baton'], 'nothing else installed')

    await t.resolves(typecheck(dir, [
      "import { createClient, BatonClientError, type Session, type TokenStore } from '@baton/client'",
      "const store: TokenStore = { get: () => undefined, set: () => {}, delete: () => {} }",
      "const baton = createClient({ issuer: 'https://auth.example.com', apiOrigins: ['https://api.example.com'], tokenStore: store })",
      "baton.on('session-ended', ({ reason }) => { document.title = reason })",
      "export const sessions: Promise<Session[]> = baton.sessions()",
      "export const me: Promise<Response> = baton.fetch('https://api.example.com/me')",
      'export const failed = (error: unknown): string | undefined => error instanceof BatonClientError ? error.code : undefined',
      ''
    ], { types: [], lib: ['ES2022', 'DOM'] }), 'a browser project (DOM, no @types/node) type-checks against @baton/client')
    await t.resolves(typecheck(dir, [
      "import { createClient, FileTokenStore } from '@baton/client/node'",
      "export const baton = createClient({ issuer: 'https://auth.example.com', tokenStore: new FileTokenStore('session.json') })",
      ''
    ]), 'and a Node project against @baton/client/node')

    await writeFile(join(dir, 'cli.mjs'), [
      "import { createClient, FileTokenStore } from '@baton/client/node'",
      'const [command, issuer, username, password] = process.argv.slice(2)',
      "const baton = createClient({ issuer, tokenStore: new FileTokenStore('session.json') })",
      "if (command === 'login') await baton.login(username, password)",
      "else if (!await baton.restore()) { console.log(JSON.stringify({ signedIn: false })); process.exit(0) }",
      "if (command === 'logout') { await baton.logout(); console.log(JSON.stringify({ signedIn: baton.signedIn })) }",
      'else console.log(JSON.stringify({ status: (await baton.fetch(`${issuer}/sessions`)).status, sessionId: baton.sessionId }))',
      ''
    ].join('\n'))
    const cli = async (...args: string[]): Promise<Record<string, unknown>> =>
      JSON.parse((await run(process.execPath, ['cli.mjs', ...args], { cwd: dir, timeout: 60_000 })).stdout) as Record<string, unknown>
    await auth.login('client-user', 'profile')
    const login = await cli('login', auth.url, 'client-user', PASSWORD)
    t.match(login, { status: 200, sessionId: String }, 'logged in, and the API answered')
    t.equal((await stat(join(dir, 'session.json'))).mode & 0o777, 0o600, 'the token file is its owner\'s only')
    t.notMatch(await readFile(join(dir, 'session.json'), 'utf8'), /eyJ/, 'and holds no access token')
    t.same(await cli('me', auth.url), login, 'a new process continues the session from the file')
    t.same(await cli('logout', auth.url), { signedIn: false }, 'logged out')
    t.same(await cli('me', auth.url), { signedIn: false }, 'and the next process finds no session')
  })

  // Each test above copied its example from docs/examples; what the doc shows is checked in docs.test.ts.
  t.same((await readFile(join(parent, 'express-app', 'express.mjs'), 'utf8')), await readFile(join(examples, 'express.mjs'), 'utf8'), 'the examples ran as written')
})
