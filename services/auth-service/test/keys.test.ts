import t from 'tap'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp, loadConfig } from '../src/app.js'
import { sharedRedis, register, login, decodeJwt } from './helper.js'

type Jwks = { keys: Array<Record<string, string>> }

t.test('a generated key is shared by every instance and survives restarts', async (t) => {
  const server = await sharedRedis()
  const env = { REDIS_URL: server.url, REDIS_KEY_PREFIX: 'keys-shared:', LOG_LEVEL: 'silent' }
  const [a, b] = await Promise.all([buildApp(loadConfig(env)), buildApp(loadConfig(env))])
  await Promise.all([a.ready(), b.ready()])
  const jwksA = (await a.inject('/.well-known/jwks.json')).json<Jwks>()
  const jwksB = (await b.inject('/.well-known/jwks.json')).json<Jwks>()
  t.equal(jwksA.keys.length, 1)
  t.same(jwksA, jwksB, 'two instances started together agree on one key')
  await Promise.all([a.close(), b.close()])

  const restarted = await buildApp(loadConfig(env))
  t.teardown(async () => { await restarted.close() })
  await restarted.ready()
  t.same((await restarted.inject('/.well-known/jwks.json')).json(), jwksA, 'a restart keeps the key')
})

t.test('the JWKS publishes public parts only', async (t) => {
  const server = await sharedRedis()
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: 'keys-public:', LOG_LEVEL: 'silent' }))
  t.teardown(async () => { await app.close() })
  const response = await app.inject('/.well-known/jwks.json')
  t.equal(response.statusCode, 200)
  t.match(response.headers['cache-control'], /max-age=\d+/)
  const [key] = response.json<Jwks>().keys
  t.same(Object.keys(key!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
  t.match(key, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  t.notOk(response.body.includes('"d"'), 'no private part')
})

const thumbprint = (jwk: Record<string, string>): string =>
  createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url')

t.test('an operator-supplied key signs instead', async (t) => {
  const server = await sharedRedis()
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = ec.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const dir = mkdtempSync(join(tmpdir(), 'baton-key-'))
  writeFileSync(join(dir, 'signing.pem'), pem)
  const publicJwk = ec.publicKey.export({ format: 'jwk' }) as Record<string, string>

  for (const [name, env] of [
    ['SIGNING_KEY_FILE', { SIGNING_KEY_FILE: join(dir, 'signing.pem') }],
    ['SIGNING_KEY with escaped newlines', { SIGNING_KEY: pem.replace(/\n/g, '\\n') }]
  ] as const) {
    const app = await buildApp(loadConfig({ REDIS_URL: server.url, REDIS_KEY_PREFIX: `keys-${name.length}:`, LOG_LEVEL: 'silent', ...env }))
    await app.ready()
    const user = await register(app, `op${name.length}`)
    const tokens = await login(app, user.username, user.password)
    const { header } = decodeJwt(tokens.access_token)
    t.equal(header.alg, 'ES256', name)
    t.equal(header.kid, thumbprint(publicJwk), `${name}: kid is the RFC 7638 thumbprint`)
    const jwks = (await app.inject('/.well-known/jwks.json')).json<Jwks>()
    t.match(jwks.keys, [{ kty: 'EC', crv: 'P-256', alg: 'ES256', x: publicJwk.x, y: publicJwk.y }], name)
    await app.close()
  }
})

t.test('a bad key setting stops start-up with a message naming the variable', async (t) => {
  t.throws(() => loadConfig({ SIGNING_KEY: 'not a key' }), /^SIGNING_KEY /)
  t.throws(() => loadConfig({ SIGNING_KEY_FILE: '/nonexistent/key.pem' }), /^SIGNING_KEY_FILE /)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  t.throws(() => loadConfig({ SIGNING_KEY: rsa }), /Ed25519 or P-256/, 'RSA is not an algorithm Baton signs with')
  t.throws(() => loadConfig({ ACCESS_TOKEN_TTL: 'soon' }), /^ACCESS_TOKEN_TTL /)
  t.throws(() => loadConfig({ PORT: '70000' }), /^PORT /)
  t.throws(() => loadConfig({ CLIENTS: '[{"client_id": "x"}]' }), /^CLIENTS\[0\]\.grant_types /)
  t.throws(() => loadConfig({ CLIENTS: '[{"client_id": "x", "grant_types": [], "introspection": true}]' }), /^CLIENTS\[0\]\.introspection needs a confidential client/, 'introspection needs a secret')
  t.throws(() => loadConfig({ CLIENTS: '[{"client_id": "x", "client_secret": "0123456789abcdef", "grant_types": ["client_credentials"], "introspection": "yes"}]' }), /^CLIENTS\[0\]\.introspection must be true or false/)
  t.throws(() => loadConfig({ CLIENTS: '[{"client_id": "x", "client_secret": "0123456789abcdef", "grant_types": []}]' }), /^CLIENTS\[0\]\.grant_types /, 'no grant is only for an introspecting resource server')
  t.same(loadConfig({ CLIENTS: '[{"client_id": "rs", "client_secret": "0123456789abcdef", "grant_types": [], "introspection": true}]' }).CLIENTS.find((client) => client.client_id === 'rs')?.introspection, true)
  t.throws(() => loadConfig({ ARGON2_MEMORY_KIB: '1024' }), /^ARGON2_MEMORY_KIB /, 'hashing cannot be weakened below OWASP\'s floor')
})
