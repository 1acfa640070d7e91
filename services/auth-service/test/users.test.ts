import t from 'tap'
import { setup, register } from './helper.js'

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
