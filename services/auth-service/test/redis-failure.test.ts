import t from 'tap'
import { startRedis } from '@baton/test-redis'
import { buildApp, loadConfig } from '../src/app.js'
import { register, login, refresh } from './helper.js'

const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const start = Date.now()
  const result = await fn()
  return [result, Date.now() - start]
}

t.test('Redis going away and coming back', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const app = await buildApp(loadConfig({ REDIS_URL: server.url, LOG_LEVEL: 'silent', REDIS_COMMAND_TIMEOUT: '500' }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const user = await register(app, 'Liam')
  const tokens = await login(app, 'Liam', user.password)
  t.equal((await app.inject('/readyz')).statusCode, 200)

  t.test('refused connections: 503 within about a second, unready', async (t) => {
    server.kill('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 100))
    const [response, ms] = await timed(async () => await refresh(app, tokens.refresh_token))
    t.equal(response.statusCode, 503)
    t.equal(response.json().error, 'temporarily_unavailable')
    t.equal(response.headers['retry-after'], '1')
    t.ok(ms < 1500, `answered in ${ms} ms`)
    const [ready, readyMs] = await timed(async () => await app.inject('/readyz'))
    t.equal(ready.statusCode, 503)
    t.ok(readyMs < 1500, `readyz answered in ${readyMs} ms`)
    t.equal((await app.inject('/healthz')).statusCode, 200, 'still alive')
  })

  t.test('a paused server: 503 within the command timeout, not a hang', async (t) => {
    await server.restart()
    await waitUntilReady(app)
    server.pause()
    t.teardown(() => { server.resume() })
    const [response, ms] = await timed(async () => await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username: 'nobody', password: 'whatever1' } }))
    t.equal(response.statusCode, 503)
    t.ok(ms < 1500, `answered in ${ms} ms`)
    server.resume()
  })

  t.test('recovers by itself when Redis returns', async (t) => {
    await waitUntilReady(app)
    // The server restarted without persistence: data is gone, service is back.
    const again = await register(app, 'Liam2')
    const fresh = await login(app, 'Liam2', again.password)
    t.equal((await refresh(app, fresh.refresh_token)).statusCode, 200)
  })
})

async function waitUntilReady (app: Awaited<ReturnType<typeof buildApp>>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await app.inject('/readyz')).statusCode === 200) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('never became ready')
}
