import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { setup } from './helper.js'

interface ComposeService {
  image?: string
  build?: string
  command?: string[]
  healthcheck?: { test: string[], interval: string, timeout: string, retries: number }
  depends_on?: Record<string, { condition: string }>
  volumes?: string[]
  stop_signal?: string
  stop_grace_period?: string
}

const compose = parse(readFileSync(new URL('../../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as { services: Record<string, ComposeService>, volumes: Record<string, unknown> }
const seconds = (duration: string): number => Number(/^(\d+)s$/.exec(duration)?.[1] ?? NaN)

t.test('docker-compose: Redis persists with AOF everysec on a named volume', async (t) => {
  const redis = compose.services.redis!
  t.match(redis.image, /^redis:7/)
  const command = redis.command ?? []
  t.equal(command[command.indexOf('--appendonly') + 1], 'yes')
  t.equal(command[command.indexOf('--appendfsync') + 1], 'everysec')
  t.ok(redis.volumes?.some((volume) => /^redis-data:\/data$/.test(volume)), 'its data directory is a volume')
  t.ok('redis-data' in compose.volumes)
})

t.test('docker-compose: every service has a healthcheck; each waits for what it needs to be healthy', async (t) => {
  for (const [name, service] of Object.entries(compose.services)) {
    t.ok(service.healthcheck?.test.length, `${name} has a healthcheck`)
    t.ok(seconds(service.healthcheck!.timeout) < seconds(service.healthcheck!.interval), `${name}: its timeout is shorter than its interval`)
  }
  t.same(compose.services['auth-service']!.depends_on, { redis: { condition: 'service_healthy' } })
  t.same(compose.services['resource-service']!.depends_on, { 'auth-service': { condition: 'service_healthy' } })
  for (const name of ['auth-service', 'resource-service']) {
    const service = compose.services[name]!
    // node itself must get SIGTERM (pnpm would SIGKILL it), with time to finish its 10 s grace period.
    t.same(service.command?.slice(0, 1), ['node'], `${name} runs node directly`)
    t.equal(service.stop_signal, 'SIGTERM')
    t.ok(seconds(service.stop_grace_period ?? '10s') > 10, `${name}: Docker waits longer than the service's own grace period`)
  }
})

t.test('the auth-service healthcheck command passes on a ready service and fails on an unready one', async (t) => {
  // On one server of its own: the test pauses it.
  const { app, backend } = await setup(t, { LOG_LEVEL: 'silent' }, { backend: 'standalone' })
  if (backend.kind !== 'standalone') throw new Error('a standalone Redis was asked for')
  const { server } = backend
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const [, flag, script] = compose.services['auth-service']!.healthcheck!.test.slice(1)
  t.equal(flag, '-e')
  // Not spawnSync: the service answering the probe runs in this process.
  const probe = async (): Promise<number | null> => await new Promise((resolve) => {
    // Only a guard against a probe that never exits: on a loaded machine node itself may take seconds to start.
    spawn(process.execPath, ['-e', script!.replace('127.0.0.1:3001', `127.0.0.1:${port}`)], { stdio: 'ignore', timeout: 60_000 }).once('exit', resolve)
  })
  t.equal(await probe(), 0, 'healthy while ready')
  server.pause()
  t.teardown(() => { server.resume() })
  t.equal(await probe(), 1, 'unhealthy while Redis does not answer')
  server.resume()
})
