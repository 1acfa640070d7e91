// node bench/redis-rotation.mjs [--sessions N] [--requests N] [--clients N]
//
// The Redis side of a refresh, without Node: `redis-benchmark` sends the
// auth-service's rotate-refresh script (its prelude included, as the service
// loads it) with EVALSHA to a private redis-server, over N seeded sessions
// picked at random, with realistic argument sizes. The presented and the
// successor hash are equal, so every call takes the full rotation path
// (read, compare, HSET of the new state, TTLs, index) and none is a reuse.
// Prints rotations/s at pipeline depths 1 and 16 (what ioredis's
// auto-pipelining reaches under load) and Redis's own CPU time per call
// (INFO commandstats), the figure shard counts are worked out from.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { startRedis } from '@baton/test-redis'

const { values: flags } = parseArgs({
  options: {
    sessions: { type: 'string', default: '100000' },
    requests: { type: 'string', default: '200000' },
    clients: { type: 'string', default: '50' }
  }
})
const SESSIONS = Number(flags.sessions)
const lua = (file) => readFileSync(new URL(`../services/auth-service/lua/${file}`, import.meta.url), 'utf8')
// As src/redis/scripts.ts composes it: the prelude, then the script.
const ROTATE = `${lua('lib/prelude.lua')}\n${lua('rotate-refresh.lua')}`
const token = () => randomBytes(32).toString('base64url')
const HASH = token()
const DAY_MS = 86_400_000
// redis-benchmark replaces each __rand_int__ with a 12-digit number below -r: the seeded uids are the same.
const uid = (i) => String(i).padStart(12, '0')

const redis = await startRedis({ extraArgs: ['--save', '', '--appendonly', 'no'] })
const client = new Redis(redis.url)
try {
  const sha = await client.script('LOAD', ROTATE)
  const now = Date.now()
  for (let start = 0; start < SESSIONS; start += 5000) {
    const pipeline = client.pipeline()
    for (let i = start; i < Math.min(SESSIONS, start + 5000); i++) {
      const key = `baton:user:{${uid(i)}}:session:sid`
      pipeline.hset(key, 'cur', HASH, 'exp', now + 14 * DAY_MS, 'abs_exp', now + 90 * DAY_MS, 'client_id', 'baton', 'scope', 'profile', 'username', `bench-user-${i}`, 'gen', 0)
      pipeline.pexpire(key, 14 * DAY_MS)
      pipeline.zadd(`baton:user:{${uid(i)}}:sessions`, now + 14 * DAY_MS, 'sid')
    }
    await pipeline.exec()
  }
  const args = [
    'EVALSHA', sha, '2', 'baton:user:{__rand_int__}:session:sid', 'baton:user:{__rand_int__}:sessions',
    HASH, HASH, randomBytes(96).toString('base64url'), String(now), String(14 * DAY_MS), '10000', 'baton', 'sid',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    '203.0.113.7', '', String(now + 365 * DAY_MS), '203.0.113.7', token().slice(0, 22), '5'
  ]
  // What every benchmarked call does: a full rotation, not an early refusal.
  const reply = await client.evalsha(sha, 2, ...args.slice(3).map((arg) => arg.replace('__rand_int__', uid(0))))
  if (reply[0] !== 'rotated') throw new Error(`the script answered ${JSON.stringify(reply)}`)
  const port = new URL(redis.url).port
  // CPU seconds the server has used (main thread, user and system): unlike commandstats' usec, which is
  // wall time inside the command, this does not grow when the machine preempts Redis.
  const cpu = async () => {
    const info = await client.info('cpu')
    const field = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)[1])
    return field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread')
  }
  for (const depth of [1, 16]) {
    await client.config('RESETSTAT')
    const before = await cpu()
    const run = spawnSync('redis-benchmark', ['-h', '127.0.0.1', '-p', port, '-c', flags.clients, '-n', flags.requests, '-r', String(SESSIONS), '-P', String(depth), '--csv', ...args], { encoding: 'utf8' })
    if (run.status !== 0) throw new Error(`redis-benchmark failed: ${run.stderr}`)
    const used = await cpu() - before
    // The test name (the command) holds commas; the seven figures after it do not.
    const figures = run.stdout.trim().split('\n').at(-1).split(',').slice(-7).map((cell) => Number(cell.replace(/"/g, '')))
    const [rps, , , p50, , p99] = figures
    const stats = /cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+),rejected_calls=\d+,failed_calls=(\d+)/.exec(await client.info('commandstats'))
    const calls = Number(stats[1])
    process.stdout.write(`pipeline ${String(depth).padStart(2)}: ${Math.round(rps)} rotations/s, p50 ${p50} ms, p99 ${p99} ms; ` +
      `Redis CPU ${(used * 1e6 / calls).toFixed(1)} µs a rotation (network included; ${stats[3]} µs inside the script, wall time), ${calls} calls, ${stats[4]} failed\n`)
  }
} finally {
  client.disconnect()
  await redis.stop()
}
