import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import type { RedisClient } from '@baton/service-kit'
import { setup, register, decodeJwt } from './helper.js'
import { randomId } from '../src/core/ids.js'

const MIGRATE = fileURLToPath(new URL('../dist/cli/migrate-usernames.js', import.meta.url))

/** What registration wrote before case folding: the record, and the name keyed by NFKC + toLowerCase(). */
async function createOldAccount (app: FastifyInstance, redis: RedisClient, prefix: string, username: string, password: string): Promise<string> {
  const id = randomId()
  await redis.hset(`${prefix}user:{${id}}`, { id, username, password_hash: await app.auth.passwords.hash(password), scopes: 'profile', created_at: String(Date.now()) })
  await redis.set(`${prefix}username:${username.normalize('NFKC').toLowerCase()}`, id)
  return id
}

t.test('registration', async (t) => {
  const { app, redis, prefix } = await setup(t)

  t.test('creates a user and answers 201 with its id and name', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/users', payload: { username: 'Alice', password: 'correct horse battery' } })
    t.equal(response.statusCode, 201)
    const body = response.json()
    t.match(body, { id: /^[A-Za-z0-9_-]{22}$/, username: 'Alice' })
    t.same(Object.keys(body).sort(), ['id', 'username'], 'no password hash or other internals in the answer')
    const stored = await redis.hget(`${prefix}user:{${body.id as string}}`, 'password_hash')
    t.match(stored, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'argon2id at OWASP parameters')
    t.notOk(stored?.includes('correct horse battery'), 'the password itself is not stored')
  })

  t.test('usernames are unique without regard to case', async (t) => {
    await register(app, 'Bob.Smith')
    for (const username of ['bob.smith', 'BOB.SMITH', 'Bob.Smith']) {
      const response = await app.inject({ method: 'POST', url: '/users', payload: { username, password: 'another good password' } })
      t.equal(response.statusCode, 409, username)
      t.equal(response.json().error, 'username_taken')
    }
  })

  t.test('any password of 8 to 128 characters is accepted, without composition rules', async (t) => {
    t.equal((await app.inject({ method: 'POST', url: '/users', payload: { username: 'eight', password: 'abcdefgh' } })).statusCode, 201)
    t.equal((await app.inject({ method: 'POST', url: '/users', payload: { username: 'long', password: 'ü'.repeat(64) + 'xyz'.repeat(21) + 'a' } })).statusCode, 201)
  })

  t.test('weak or malformed input gets 400 and creates nothing', async (t) => {
    const cases: Array<[string, unknown]> = [
      ['7 characters', { username: 'carol', password: 'abcdefg' }],
      ['129 characters', { username: 'carol', password: 'ab'.repeat(64) + 'c' }],
      ['contains the username', { username: 'carol', password: 'carol12345' }],
      ['too repetitive', { username: 'carol', password: 'aaaaaaaaaaaa' }],
      ['no password', { username: 'carol' }],
      ['non-string password', { username: 'carol', password: 12345678 }],
      ['object username', { username: { $ne: '' }, password: 'correct horse battery' }],
      ['username with spaces', { username: 'carol smith', password: 'correct horse battery' }],
      ['username too short', { username: 'cc', password: 'correct horse battery' }],
      ['array body', ['carol', 'pw']]
    ]
    for (const [name, payload] of cases) {
      const response = await app.inject({ method: 'POST', url: '/users', payload: payload as object })
      t.equal(response.statusCode, 400, name)
      t.equal(response.json().error, 'invalid_request', name)
    }
    t.equal(await redis.exists(`${prefix}username:carol`), 0, 'no user was created')
  })

  t.test('only JSON registers: a form, the body a cross-site page can post without a preflight, gets 415 and creates nothing', async (t) => {
    const form = await app.inject({
      method: 'POST', url: '/users', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=formuser&password=correct+horse+battery'
    })
    t.equal(form.statusCode, 415)
    t.same(form.json(), { error: 'invalid_request', error_description: 'the body must be application/json' })
    const multipart = await app.inject({
      method: 'POST', url: '/users', headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: '--x\r\nContent-Disposition: form-data; name="username"\r\n\r\nformuser\r\n--x--\r\n'
    })
    t.equal(multipart.statusCode, 415)
    const bare = await app.inject({ method: 'POST', url: '/users', payload: '{"username":"formuser","password":"correct horse battery"}' })
    t.equal(bare.statusCode, 415, 'no content type is no JSON either')
    t.equal(await redis.exists(`${prefix}username:formuser`), 0, 'no user was created')
    const json = await app.inject({
      method: 'POST', url: '/users', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, payload: JSON.stringify({ username: 'jsonuser', password: 'correct horse battery' })
    })
    t.equal(json.statusCode, 201, 'JSON, with parameters and in any case, registers')
  })

  t.test('malformed bodies get 4xx, never 5xx', async (t) => {
    const json = await app.inject({ method: 'POST', url: '/users', headers: { 'content-type': 'application/json' }, payload: '{"username": "dave", "password": ' })
    t.equal(json.statusCode, 400)
    const text = await app.inject({ method: 'POST', url: '/users', headers: { 'content-type': 'text/plain' }, payload: 'hello' })
    t.equal(text.statusCode, 415)
    const huge = await app.inject({ method: 'POST', url: '/users', payload: { username: 'dave', password: 'x'.repeat(1024 * 1024) } })
    t.equal(huge.statusCode, 413, 'a 1 MB password is refused before it is hashed')
  })
})

t.test('look-alike usernames: RFC 8265 folding and UTS #39 script mixing', async (t) => {
  const { app, redis, prefix } = await setup(t, { RATE_LIMIT_IP_ATTEMPTS: '100000', RATE_LIMIT_IP_FAILURES: '100000' })
  const password = 'correct horse battery'
  const registration = async (username: string) => {
    const response = await app.inject({ method: 'POST', url: '/users', payload: { username, password } })
    return { status: response.statusCode, body: response.json<Record<string, string>>() }
  }
  const loginAs = async (username: string) => {
    const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username, password } })
    return { status: response.statusCode, sub: response.statusCode === 200 ? decodeJwt(response.json<{ access_token: string }>().access_token).payload.sub : undefined }
  }

  t.test('one name, however it is cased, spelled or wide: 409 to register again, and each spelling logs in', async (t) => {
    const cases: Array<[string, string[]]> = [
      ['Straße', ['STRASSE', 'strasse', 'straße', 'STRAẞE', 'ＳＴＲＡＳＳＥ']],
      ['οδος', ['ΟΔΟΣ', 'οδοσ', 'Οδος', 'ΟΔΟς']],
      ['foo', ['ｆｏｏ', 'ＦＯＯ', 'Foo']],
      ['José', ['JOSE\u0301', 'jose\u0301', 'JOSÉ']]
    ]
    for (const [name, variants] of cases) {
      const first = await registration(name)
      t.equal(first.status, 201, `${name} registers`)
      for (const variant of variants) {
        t.match(await registration(variant), { status: 409, body: { error: 'username_taken' } }, `${variant} is ${name}: 409`)
        t.same(await loginAs(variant), { status: 200, sub: first.body.id }, `${variant} logs in as ${name}`)
      }
    }
  })

  t.test('a name mixing scripts is refused, with a reason, whether or not its look-alike exists', async (t) => {
    t.equal((await registration('admin')).status, 201)
    for (const name of ['\u0430dmin', 'p\u0430ypal', 'ivan.\u0438\u0432\u0430\u043d', 'g\u043e\u043egle', '\u0391lpha']) {
      const answer = await registration(name)
      t.equal(answer.status, 400, `${name}: 400`)
      t.match(answer.body, { error: 'invalid_request', error_description: /mixes letters of different scripts \(.*(Cyrillic|Greek).*\)/ }, `${name}: says why`)
    }
    t.not((await loginAs('\u0430dmin')).status, 200, 'the look-alike does not log in as admin')
    t.equal(await redis.exists(`${prefix}username:\u0430dmin`), 0, 'and nothing was stored for it')
  })

  t.test('one script, or the mixes UTS #39 allows, are welcome', async (t) => {
    for (const name of ['\u0438\u0432\u0430\u043d', '\u5c71\u7530\u305f\u308d\u3046', 'yamada\u5c71\u7530', 'kim\uae40\ucca0\uc218', '\u05e9\u05dc\u05d5\u05dd', '\u0645\u0631\u062d\u0628\u06271', 'm\u00fcller.2', 'user@example.com', '\u0930\u093e\u092e\u0942']) {
      t.equal((await registration(name)).status, 201, name)
    }
  })

  t.test('what RFC 8265 does not allow in a name is refused with 400', async (t) => {
    const cases: Array<[string, string]> = [
      ['a\u0007bc', 'a control character'],
      ['ab c', 'a space'],
      ['ab\u00a0c', 'a no-break space'],
      ['abc\u{1F600}', 'an emoji'],
      ['x\u3164y', 'the Hangul filler, a letter that shows as nothing'],
      ['ab\u200dc', 'a zero-width joiner'],
      ['\u2460\u2461\u2462', 'circled digits (compatibility forms)'],
      ['\ufb01le', 'a ligature'],
      ['\u01c5emal', 'a titlecase digraph'],
      ['ab\u0640c', 'the Arabic tatweel'],
      ['1\u0645\u0631\u062d\u0628\u0627', 'a right-to-left name that starts with a digit'],
      ['\u0631\u0642\u06453\u0664', 'European and Arabic-Indic digits together'],
      ['\u0301abc', 'a leading combining mark'],
      ['a\u0301\u0301bc', 'the same mark twice on one letter']
    ]
    for (const [name, what] of cases) {
      const answer = await registration(name)
      t.equal(answer.status, 400, `${what}: 400`)
      t.equal(answer.body.error, 'invalid_request', what)
      t.type(answer.body.error_description, 'string', what)
    }
  })

  t.test('a name is kept as written, but for its width', async (t) => {
    t.match(await registration('\uff21\uff22\uff23de'), { status: 201, body: { username: 'ABCde' } })
    t.match(await registration('CamelCase'), { status: 201, body: { username: 'CamelCase' } })
  })
})

t.test('accounts registered under the old normalization (NFKC, lower case) keep working', async (t) => {
  const { app, redis, prefix } = await setup(t)
  const password = 'correct horse battery'
  const createTheOldWay = async (username: string): Promise<string> => await createOldAccount(app, redis, prefix, username, password)
  const loginAs = async (username: string): Promise<unknown> => {
    const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username, password } })
    return response.statusCode === 200 ? decodeJwt(response.json<{ access_token: string }>().access_token).payload.sub : response.statusCode
  }
  const registration = async (username: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/users', payload: { username, password: 'another good password' } })).statusCode

  const strasse = await createTheOldWay('Straße')
  const greek = await createTheOldWay('ΟΔΟΣ')
  const plain = await createTheOldWay('Plain.Name')
  t.equal(await registration('straße'), 409, 'before its first login, the old spelling is still taken')
  t.equal(await registration('plain.name'), 409, 'a name whose form did not change is taken as before')
  t.equal(await loginAs('Straße'), strasse, 'the old account logs in as it always did')
  t.equal(await loginAs('straße'), strasse)
  t.equal(await loginAs('ΟΔΟΣ'), greek)
  t.equal(await loginAs('οδος'), greek, 'its old lower-case form')
  t.equal(await loginAs('Plain.Name'), plain)
  t.equal(await redis.get(`${prefix}username:strasse`), strasse, 'its login gave it the case-folded key')
  t.equal(await loginAs('STRASSE'), strasse, 'so now every spelling finds it')
  t.equal(await loginAs('οδοσ'), greek)
  t.equal(await registration('STRASSE'), 409, 'and no new account can take a spelling of it')
  t.equal(await registration('οδοσ'), 409)
})

t.test('migrate-usernames gives old accounts their folded key at once, without waiting for a login', async (t) => {
  const { app, redis, prefix, backend } = await setup(t)
  const password = 'correct horse battery'
  const strasse = await createOldAccount(app, redis, prefix, 'Straße', password)
  const greek = await createOldAccount(app, redis, prefix, 'ΟΔΟΣ', password)
  await createOldAccount(app, redis, prefix, 'plain', password)
  // Registered since, while the old account had not logged in: both keep their own spelling.
  const rival = (await app.inject({ method: 'POST', url: '/users', payload: { username: 'οδοσ', password } })).json<{ id: string }>().id

  const run = async (): Promise<Record<string, unknown>> => {
    const { stdout } = await promisify(execFile)(process.execPath, [MIGRATE], { env: { PATH: process.env.PATH ?? '', ...backend.env, REDIS_KEY_PREFIX: prefix } })
    return JSON.parse(stdout) as Record<string, unknown>
  }
  t.same(await run(), { scanned: 4, added: 1, conflicts: [greek] }, 'Straße got its key; ΟΔΟΣ could not, οδοσ was taken meanwhile')
  t.equal(await redis.get(`${prefix}username:strasse`), strasse)
  t.equal(await redis.get(`${prefix}username:οδοσ`), rival, 'the newer account keeps its key')
  t.equal((await app.inject({ method: 'POST', url: '/users', payload: { username: 'STRASSE', password } })).statusCode, 409, 'no login needed: every spelling of the old name is taken')
  t.same(await run(), { scanned: 5, added: 0, conflicts: [greek] }, 'a second run changes nothing')
})
