// The same small API behind each adapter, on a real socket: GET /me needs a
// valid token, GET /reports the scope reports:read, and each answers with
// the claims it was given. What one adapter must do, every adapter must do.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import express from 'express'
import express4 from 'express4'
import type { Test } from 'tap'
import { verifierPlugin } from '../src/fastify.js'
import { expressVerifier } from '../src/express.js'
import { nodeVerifier } from '../src/node.js'
import type { AdapterOptions } from '../src/adapter.js'
import type { BearerAnswer } from './helper.js'

export const ADAPTERS = ['fastify', 'express 5', 'express 4', 'node:http'] as const
export type AdapterName = typeof ADAPTERS[number]

export interface AdapterApp {
  name: AdapterName
  url: string
  /** GET `path` with the Authorization header given (none when undefined): what a client sees. */
  get: (path: string, authorization?: string) => Promise<BearerAnswer & { body: Record<string, unknown> }>
  /** `method` `path` with these headers. */
  send: (path: string, headers: Record<string, string>, method?: string) => Promise<AdapterAnswer>
}

export type AdapterAnswer = BearerAnswer & { body: Record<string, unknown>, headers: Headers }

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/** Starts `name`'s app with these verifier options; closed with the test. */
export async function startAdapterApp (t: Test, name: AdapterName, options: AdapterOptions): Promise<AdapterApp> {
  let url: string
  if (name === 'fastify') {
    // A bare Fastify app: no error handler of Baton's, as a user would start.
    const app = Fastify({ logger: false })
    await app.register(verifierPlugin, options)
    app.get('/me', { onRequest: app.authenticate }, async (request) => request.auth)
    app.get('/reports', { onRequest: app.requireScope('reports:read') }, async (request) => request.auth)
    t.teardown(async () => { await app.close() })
    url = await app.listen({ host: '127.0.0.1', port: 0 })
  } else if (name === 'node:http') {
    const baton = nodeVerifier(options)
    const reports = baton.requireScope('reports:read')
    const server = createServer((req, res) => {
      const path = req.url?.split('?')[0]
      const guard = path === '/me' ? baton.authenticate : path === '/reports' ? reports : undefined
      if (guard === undefined) {
        res.writeHead(404).end()
        return
      }
      guard(req, res).then((claims) => {
        if (claims !== undefined) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(claims))
      }, () => { res.writeHead(500).end() })
    })
    t.teardown(async () => { baton.close(); await closeServer(server) })
    url = await listen(server)
  } else {
    const baton = expressVerifier(options)
    const app = (name === 'express 5' ? express : express4 as unknown as typeof express)()
    app.get('/me', baton.authenticate, (req, res) => { res.json(req.auth) })
    app.get('/reports', baton.requireScope('reports:read'), (req, res) => { res.json(req.auth) })
    // A router mounted below a path: req.url loses the mount point, the URL a proof names does not.
    const api = (name === 'express 5' ? express : express4 as unknown as typeof express).Router()
    api.get('/me', baton.authenticate, (req, res) => { res.json(req.auth) })
    app.use('/api', api)
    const server = createServer(app)
    t.teardown(async () => { baton.close(); await closeServer(server) })
    url = await listen(server)
  }
  const send = async (path: string, headers: Record<string, string>, method = 'GET'): Promise<AdapterAnswer> => {
    const response = await fetch(`${url}${path}`, { method, headers })
    const text = await response.text()
    let body: Record<string, unknown> = {}
    try { body = JSON.parse(text) as Record<string, unknown> } catch {}
    return {
      status: response.status,
      error: typeof body.error === 'string' ? body.error : undefined,
      challenge: response.headers.get('www-authenticate') ?? undefined,
      body,
      headers: response.headers
    }
  }
  return {
    name,
    url,
    get: async (path, authorization) => await send(path, authorization === undefined ? {} : { authorization }),
    send
  }
}
