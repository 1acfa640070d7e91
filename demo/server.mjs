#!/usr/bin/env node
// The demo page's own web server, started by `pnpm demo` (scripts/start.mjs
// --demo) next to the two services. It serves:
//
//   /                 the page (demo/public/)
//   /client/*.js      @baton/client, straight from packages/client/dist as ES modules
//   /config.json      where the page finds the services, from the environment
//   POST /thief/*     the "thief's computer": replays a refresh token, or calls
//                     the API with what it got, from this process rather than
//                     the browser, so the auth-service sees another user agent
//                     (a copy used elsewhere, not a retry of the owner's)
//   /healthz, /readyz for start.mjs
//
// Environment: PORT, HOST (default 127.0.0.1), ISSUER (the auth-service as
// the browser reaches it), DEMO_API_URL (the resource-service, likewise),
// DEMO_REFRESH_TOKEN_DELIVERY (`cookie` or `body`), DEMO_CLIENT_ID (the
// registered client the page logs in as), DEMO_DPOP (`on`, the default:
// the page's clients bind their tokens to a key with DPoP; `off`). Log
// lines are JSON like the services' and never carry a token.

import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { DpopSigner, generateDpopKeyPair } from '../packages/client/dist/dpop.js'

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url))
const CLIENT_DIST = fileURLToPath(new URL('../packages/client/dist/', import.meta.url))
const BODY_LIMIT = 8192
const THIEF_USER_AGENT = 'curl/8.5.0'

const env = process.env
const host = env.HOST === undefined || env.HOST === '' ? '127.0.0.1' : env.HOST
const port = Number(env.PORT ?? 3000)
const authUrl = (env.ISSUER ?? 'http://localhost:3001').replace(/\/$/, '')
const apiUrl = (env.DEMO_API_URL ?? 'http://localhost:3002').replace(/\/$/, '')
const delivery = env.DEMO_REFRESH_TOKEN_DELIVERY === 'body' ? 'body' : 'cookie'
const clientId = env.DEMO_CLIENT_ID ?? 'baton'
const dpop = env.DEMO_DPOP !== 'off'
// The thief's own key: with it the thief can sign proofs, but not the victim's.
const thiefSigner = new DpopSigner(await generateDpopKeyPair())
const version = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version

function log (level, msg, fields = {}) {
  process.stdout.write(`${JSON.stringify({ level, time: Date.now(), service: 'demo', version, msg, ...fields })}\n`)
}

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8'
}

// What the page may load and talk to: itself and the two services, nothing else.
const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    `connect-src 'self' ${authUrl} ${apiUrl}`,
    "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'", "object-src 'none'"
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
}

function send (response, status, type, body) {
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type })
  response.end(body)
}

function sendJson (response, status, value) {
  send(response, status, CONTENT_TYPES['.json'], JSON.stringify(value))
}

/** A file from `directory` whose name is one plain segment: no way out of the directory. */
async function sendFile (response, directory, name) {
  const extension = /\.[a-z]+$/.exec(name)?.[0]
  if (!/^[\w-]+(\.[\w-]+)*$/.test(name) || extension === undefined || CONTENT_TYPES[extension] === undefined) return false
  const body = await readFile(join(directory, name)).catch(() => undefined)
  if (body === undefined) return false
  send(response, 200, CONTENT_TYPES[extension], body)
  return true
}

async function readJson (request) {
  if (!/^application\/json\b/.test(request.headers['content-type'] ?? '')) return undefined
  let size = 0
  const chunks = []
  for await (const chunk of request) {
    size += chunk.length
    if (size > BODY_LIMIT) return undefined
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

/** What the thief's computer got back, for the page to show. */
async function relay (response, upstream) {
  const text = await upstream.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  sendJson(response, 200, { status: upstream.status, body })
}

/** A `DPoP` header signed with the thief's own key, when the page asks the thief to send one. */
async function thiefProof (input, method, url, accessToken) {
  if (input.scheme !== 'DPoP') return {}
  return { dpop: await thiefSigner.proof({ method, url, issuedAt: Math.floor(Date.now() / 1000), ...(accessToken === undefined ? {} : { accessToken }) }) }
}

const THIEF_ROUTES = {
  // The stolen refresh token, presented as any client would, from elsewhere; with `scheme: 'DPoP'`, with a proof of the thief's own key.
  '/thief/refresh': async (input, response) => {
    if (typeof input?.refresh_token !== 'string' || input.refresh_token === '') return sendJson(response, 400, { error: 'invalid_request', error_description: 'refresh_token: a string' })
    log(30, 'thief replays a refresh token')
    await relay(response, await fetch(`${authUrl}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': THIEF_USER_AGENT, ...await thiefProof(input, 'POST', `${authUrl}/oauth/token`) },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: input.refresh_token, client_id: typeof input.client_id === 'string' ? input.client_id : 'baton' }),
      signal: AbortSignal.timeout(10_000)
    }))
  },
  // The API, called with the access token the thief got: as a bearer token, or (`scheme: 'DPoP'`) with a proof of the thief's own key.
  '/thief/me': async (input, response) => {
    if (typeof input?.access_token !== 'string' || input.access_token === '') return sendJson(response, 400, { error: 'invalid_request', error_description: 'access_token: a string' })
    const scheme = input.scheme === 'DPoP' ? 'DPoP' : 'Bearer'
    log(30, 'thief calls the API', { scheme })
    await relay(response, await fetch(`${apiUrl}/me`, {
      headers: { authorization: `${scheme} ${input.access_token}`, ...await thiefProof(input, 'GET', `${apiUrl}/me`, input.access_token), 'user-agent': THIEF_USER_AGENT },
      signal: AbortSignal.timeout(10_000)
    }))
  }
}

async function handle (request, response) {
  const { pathname } = new URL(request.url ?? '/', 'http://demo.invalid')
  if (request.method === 'GET' || request.method === 'HEAD') {
    if (pathname === '/healthz' || pathname === '/readyz') return sendJson(response, 200, { status: 'ok' })
    if (pathname === '/config.json') return sendJson(response, 200, { issuer: authUrl, apiUrl, delivery, clientId, dpop })
    if (pathname === '/') return void await sendFile(response, PUBLIC, 'index.html')
    if (pathname.startsWith('/client/') && await sendFile(response, CLIENT_DIST, pathname.slice('/client/'.length))) return
    if (pathname.lastIndexOf('/') === 0 && await sendFile(response, PUBLIC, pathname.slice(1))) return
    return sendJson(response, 404, { error: 'not_found' })
  }
  const thief = request.method === 'POST' ? THIEF_ROUTES[pathname] : undefined
  if (thief === undefined) return sendJson(response, 404, { error: 'not_found' })
  // Only the page itself drives the thief: a cross-site form cannot send JSON, and another origin's script is refused here.
  if (request.headers.origin !== undefined && request.headers.origin !== `http://${request.headers.host}`) return sendJson(response, 403, { error: 'forbidden' })
  const input = await readJson(request)
  if (input === undefined) return sendJson(response, 400, { error: 'invalid_request', error_description: `a JSON body of at most ${BODY_LIMIT} bytes` })
  await thief(input, response)
}

const server = createServer((request, response) => {
  handle(request, response).catch((error) => {
    log(50, 'request failed', { err: { message: error.message } })
    if (!response.headersSent) sendJson(response, 502, { error: 'bad_gateway', error_description: 'a service did not answer' })
    else response.destroy()
  })
})
server.keepAliveTimeout = 5000

let stopping = false
function stop (reason) {
  if (stopping) return
  stopping = true
  log(30, `${reason}: closing`)
  server.close(() => { process.exit(0) })
  server.closeIdleConnections()
  // The page keeps connections open between requests; none is worth waiting for long.
  setTimeout(() => { server.closeAllConnections() }, 2000).unref()
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => { stop(signal) })
// start.mjs is gone without a word (killed): stop too.
process.once('disconnect', () => { stop('the start script is gone') })

server.listen(port, host, () => {
  log(30, `demo page served at http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`, { delivery, dpop })
})
