import t from 'tap'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { AUDIENCE, ISSUER, claims, generateTestKey, randomAuthorizationValues, setup, signToken, startJwksServer, waitFor } from './helper.js'

/** One request over a fresh connection; resolves with the status code. */
async function getStatus (port: number, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/me', headers, agent: false }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Writes raw bytes as a request head, so nothing client-side cleans them up; resolves with the status code. */
async function rawStatus (port: number, authorization: Buffer): Promise<number> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let received = ''
    socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
    socket.on('error', reject)
    socket.on('close', () => {
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received)
      if (match === null) reject(new Error(`no status line in ${JSON.stringify(received.slice(0, 100))}`))
      else resolve(Number(match[1]))
    })
    socket.end(Buffer.concat([
      Buffer.from('GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: '),
      authorization,
      Buffer.from('\r\n\r\n')
    ]))
  })
}

t.test('headers over 16 KiB get 431; a token just under the limit is still checked', async (t) => {
  const { app, keys } = await setup(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const token = signToken(keys[0]!, claims())

  t.equal(await getStatus(port, { authorization: `Bearer ${token}`, 'x-padding': 'a'.repeat(17 * 1024) }), 431)
  t.equal(await getStatus(port, { authorization: `Bearer ${'a'.repeat(17 * 1024)}` }), 431, 'a huge Authorization header')
  t.equal(await getStatus(port, { authorization: `Bearer ${token}`, 'x-padding': 'a'.repeat(14 * 1024) }), 200, 'under 16 KiB in all')
  t.equal(await getStatus(port, { authorization: `Bearer ${'a'.repeat(12 * 1024)}.b.c` }), 401, 'a 12 KiB token is refused as too large, not parsed')
})

t.test('garbage Authorization values on a real socket: 4xx, never 5xx', async (t) => {
  const { app, keys } = await setup(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  const valid = signToken(keys[0]!, claims())

  const values: Buffer[] = [
    Buffer.from('Bearer ünïcødé.tøken.✓'),
    Buffer.from('Bearer 😀😀😀'),
    Buffer.from('Bearer \u202Eabc'),
    Buffer.from(`Bearer ${valid}\u0000`),
    Buffer.from(`Bearer ${valid} ${valid}`),
    Buffer.from(`Bearer\t${valid}`),
    Buffer.from(`Bearer ${valid.replaceAll('.', '..')}`),
    Buffer.from(`Bearer ${Buffer.from('{"alg":"EdDSA","typ":"at+jwt","kid":"\u0000"}').toString('base64url')}.${valid.split('.')[1]}.AA`),
    Buffer.from(`Bearer ${'A'.repeat(8000)}.${'B'.repeat(4000)}.${'C'.repeat(86)}`),
    Buffer.from('Basic ' + randomBytes(100).toString('base64')),
    Buffer.from(' '.repeat(100)),
    Buffer.from([0xff, 0xfe, 0xfd])
  ]
  for (const value of values) {
    const status = await rawStatus(port, value)
    t.ok(status >= 400 && status < 500, `${status} for ${JSON.stringify(value.toString('latin1').slice(0, 40))}`)
  }
  // Random values are one property, so one assertion: it lists the values that got anything but a 4xx.
  const random = randomAuthorizationValues(valid.split('.')[0]!, 100)
  const not4xx: string[] = []
  for (const value of random) {
    const status = await rawStatus(port, value)
    if (status < 400 || status >= 500) not4xx.push(`${status} for ${JSON.stringify(value.toString('latin1'))}`)
  }
  t.same(not4xx, [], `${random.length} random values, most of them after "Bearer ": a 4xx each`)
})

t.test('the server process: one line and exit 1 on bad config; exit 0 on SIGTERM', async (t) => {
  const server = fileURLToPath(new URL('../dist/server.js', import.meta.url))

  const bad = spawn(process.execPath, [server], { env: { PATH: process.env.PATH, PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  bad.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const badCode = await new Promise((resolve) => bad.on('exit', resolve))
  t.equal(badCode, 1)
  t.equal(stderr, 'resource-service: invalid configuration: PORT must be an integer from 0 to 65535\n')

  const key = generateTestKey('EdDSA')
  const jwks = await startJwksServer([key])
  t.teardown(jwks.close)
  const child = spawn(process.execPath, [server], {
    env: { PATH: process.env.PATH, PORT: '0', ISSUER, AUDIENCE, JWKS_URL: jwks.url, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  // Upper bounds only: a process starting on a busy machine takes what it takes.
  await waitFor(() => /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.test(stdout), 60_000)
  const port = Number(/Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)![1])

  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 30_000)
  const token = signToken(key, claims())
  const me = await fetch(`http://127.0.0.1:${port}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(me.status, 200)
  t.notMatch(stdout, token.split('.')[2]!, 'the token is not in the logs')

  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  child.kill('SIGTERM')
  t.same(await exited, { code: 0, signal: null })
})
