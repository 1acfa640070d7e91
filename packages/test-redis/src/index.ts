import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A private redis-server for one test suite. */
export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  url: string
  host: string
  port: number
  /** The server's process id; a new one after `restart()`. */
  readonly pid: number
  /** Stops the server for good and removes its data directory (unless the caller supplied `dir`). */
  stop: () => Promise<void>
  /** Sends a signal, SIGKILL unless told otherwise: the server vanishes mid-flight. */
  kill: (signal?: NodeJS.Signals) => void
  /** SIGSTOP: the server keeps its connections open but answers nothing. */
  pause: () => void
  /** SIGCONT after `pause()`. */
  resume: () => void
  /**
   * Starts the server again on the same port and data directory. A running
   * server is first shut down with SIGTERM, so an append-only file is flushed;
   * to simulate a crash, `kill()` before.
   */
  restart: () => Promise<void>
}

export interface StartRedisOptions {
  /** Persist to an append-only file in the data directory (default: nothing is persisted). */
  appendonly?: boolean
  /** Data directory; default: a fresh temporary one, removed by `stop()`. */
  dir?: string
  /** Further `--option value` arguments for redis-server. */
  extraArgs?: string[]
}

export interface StartRedisSentinelOptions {
  /** Replicas of the master (default 1). */
  replicas?: number
  /** Sentinels watching it (default 1, quorum 1: enough for a test, not for production). */
  sentinels?: number
  /** The master's name, as clients ask for it (default `baton`). */
  name?: string
}

export interface TestRedisSentinel {
  /** The name the Sentinels know the master by. */
  name: string
  /** The Sentinels' addresses, for `new Redis({ sentinels, name })`. */
  sentinels: Array<{ host: string, port: number }>
  /** The servers: the first master, then its replicas. */
  server: (index: number) => TestRedis
  /** The port of the current master, as the first Sentinel reports it. */
  masterPort: () => Promise<number>
  /** Stops every server and Sentinel and removes their directory. */
  stop: () => Promise<void>
}

export interface StartRedisClusterOptions {
  /** At least 3, as `redis-cli --cluster create` demands (default 3). */
  masters?: number
  /** Default 1. */
  replicasPerMaster?: number
}

/** One node of a test cluster: the controls of a TestRedis. */
export type TestRedisClusterNode = TestRedis

export interface TestRedisCluster {
  /** Every node, masters first as created; pass to `new Redis.Cluster(nodes)`. */
  nodes: Array<{ host: string, port: number }>
  /** `redis://127.0.0.1:P1,redis://127.0.0.1:P2,...`, as a REDIS_URL-style seed list. */
  seeds: string
  /** The i-th node (same order as `nodes`) to kill, pause or restart. */
  node: (index: number) => TestRedisClusterNode
  /** Stops every node and removes the cluster's directory. */
  stop: () => Promise<void>
}

const HOST = '127.0.0.1'
const INSTALL_HINT = 'apt-get install redis-server (or brew install redis)'

// ---------------------------------------------------------------------------
// No stray servers. The 'exit' handler covers a normal end of the test
// process; a watchdog covers everything else (an uncaught signal, SIGKILL, a
// tap timeout): it holds a pipe from this process, and when the pipe closes
// because this process is gone, it kills every server still registered.

const live = new Set<ChildProcess>()
let watchdog: ChildProcess | undefined

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

const WATCHDOG_SOURCE = `
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {})
const pids = new Set()
let buffer = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buffer += chunk
  let newline
  while ((newline = buffer.indexOf('\\n')) !== -1) {
    const line = buffer.slice(0, newline)
    buffer = buffer.slice(newline + 1)
    const pid = Number(line.slice(1))
    if (line[0] === '+') pids.add(pid)
    else pids.delete(pid)
  }
})
const end = () => {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGCONT'); process.kill(pid, 'SIGKILL') } catch {}
  }
  process.exit(0)
}
process.stdin.on('end', end)
process.stdin.on('error', end)
`

function tellWatchdog (line: string): void {
  if (watchdog === undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'] })
    watchdog.unref()
    const stdin = watchdog.stdin as Socket
    stdin.unref()
    // The watchdog gone (it should not be) is no reason to fail a test.
    stdin.on('error', () => {})
    watchdog.on('error', () => {})
  }
  watchdog.stdin?.write(`${line}\n`)
}

// ---------------------------------------------------------------------------

function which (command: string): string | undefined {
  const found = spawnSync('/bin/sh', ['-c', `command -v ${command}`], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path !== '' ? path : undefined
}

function redisBinary (name: 'redis-server' | 'redis-cli'): string {
  const path = which(name)
  if (path === undefined) throw new Error(`${name} is not on the PATH; install it: ${INSTALL_HINT}`)
  return path
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port)
        else reject(new Error('could not obtain a free port'))
      })
    })
  })
}

type Reply = string | number | null | { error: string }

/**
 * Sends one command over a fresh connection and parses the first reply
 * (simple string, error, integer or bulk string: all these helpers need),
 * without a client library's reconnection logic in the way.
 */
export async function redisCommand (port: number, args: string[], host = HOST, timeoutMs = 1000): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, host)
    let data = Buffer.alloc(0)
    const done = (error: Error | undefined, reply?: Reply): void => {
      socket.destroy()
      if (error !== undefined) reject(error)
      else resolve(reply ?? null)
    }
    socket.setTimeout(timeoutMs, () => { done(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`)) })
    socket.on('error', (error) => { done(error) })
    socket.on('close', () => { done(new Error(`connection to ${host}:${port} closed`)) })
    socket.on('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`)
    })
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      const lineEnd = data.indexOf('\r\n')
      if (lineEnd === -1) return
      const line = data.subarray(1, lineEnd).toString()
      switch (data[0]) {
        case 0x2b: done(undefined, line); return // +
        case 0x2d: done(undefined, { error: line }); return // -
        case 0x3a: done(undefined, Number(line)); return // :
        case 0x24: { // $
          const length = Number(line)
          if (length < 0) { done(undefined, null); return }
          if (data.length >= lineEnd + 2 + length + 2) done(undefined, data.subarray(lineEnd + 2, lineEnd + 2 + length).toString())
          return
        }
        default: done(new Error(`unexpected reply from ${host}:${port}`))
      }
    })
  })
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves once the server at host:port answers PING with PONG (not merely LOADING). */
export async function waitForPong (port: number, host = HOST, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await redisCommand(port, ['PING'], host, 500).catch(() => null) === 'PONG') return
    await sleep(25)
  }
  throw new Error(`redis-server on ${host}:${port} did not answer PING within ${timeoutMs} ms`)
}

function infoField (info: Reply, field: string): string | undefined {
  if (typeof info !== 'string') return undefined
  const match = new RegExp(`^${field}:(.*)$`, 'm').exec(info)
  return match?.[1]?.trim()
}

async function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise((resolve) => child.once('exit', resolve))
}

class PortInUse extends Error {}

interface ServerSpec {
  binary: string
  port: number
  dir: string
  args: string[]
  /** A configuration file, for servers that must rewrite theirs (Sentinel). */
  configFile?: string
}

/**
 * Spawns redis-server and resolves once it answers PING. Fails at once if it
 * exits first, with the tail of its log; PortInUse when another process got
 * the port between freePort() and the bind.
 */
async function launch (spec: ServerSpec, timeoutMs = 10_000): Promise<ChildProcess> {
  const logfile = join(spec.dir, `redis-${spec.port}.log`)
  const child = spawn(spec.binary, [
    ...(spec.configFile !== undefined ? [spec.configFile] : []),
    '--port', String(spec.port), '--bind', HOST, '--daemonize', 'no', '--protected-mode', 'no',
    '--dir', spec.dir, '--logfile', logfile, ...spec.args
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  // Argument errors are printed before the logfile is opened.
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-2000) })
  ;(child.stderr as Socket | null)?.unref()
  child.unref()
  live.add(child)
  child.once('exit', () => {
    live.delete(child)
    if (child.pid !== undefined) tellWatchdog(`-${child.pid}`)
  })
  let spawnError: Error | undefined
  child.once('error', (error) => { spawnError = error })
  if (child.pid !== undefined) tellWatchdog(`+${child.pid}`)

  const failure = (): Error => {
    const log = existsSync(logfile) ? readFileSync(logfile, 'utf8') : ''
    const tail = `${stderr}\n${log}`.trim().split('\n').slice(-5).join('\n')
    const message = `redis-server on port ${spec.port} exited (${child.exitCode ?? child.signalCode}):\n${tail}`
    return /address already in use/i.test(tail) ? new PortInUse(message) : new Error(message)
  }

  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (spawnError !== undefined) throw spawnError
    if (child.exitCode !== null || child.signalCode !== null) throw failure()
    if (await redisCommand(spec.port, ['PING'], HOST, 500).catch(() => null) === 'PONG') {
      // Make sure the PONG came from our child and not from a server that
      // took the port first.
      const info = await redisCommand(spec.port, ['INFO', 'server'], HOST, 1000).catch(() => null)
      if (infoField(info, 'process_id') === String(child.pid)) return child
      child.kill('SIGKILL')
      await exited(child)
      throw new PortInUse(`port ${spec.port} was taken by another redis-server`)
    }
    await sleep(25)
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server on port ${spec.port} did not answer PING within ${timeoutMs} ms`)
}

/** Picks free ports and launches, again with new ports if one was taken meanwhile. */
async function launchOnFreePort (build: (port: number) => Promise<ServerSpec>): Promise<{ child: ChildProcess, spec: ServerSpec }> {
  for (let attempt = 1; ; attempt++) {
    const spec = await build(await freePort())
    try {
      return { child: await launch(spec), spec }
    } catch (error) {
      if (!(error instanceof PortInUse) || attempt >= 5) throw error
    }
  }
}

function handleFor (spec: ServerSpec, first: ChildProcess, cleanup: () => void): TestRedis {
  let child = first
  let stopped = false
  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    child.kill('SIGCONT')
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited(child)
    clearTimeout(timer)
  }
  return {
    url: `redis://${HOST}:${spec.port}`,
    host: HOST,
    port: spec.port,
    get pid () { return child.pid ?? -1 },
    kill: (signal = 'SIGKILL') => { child.kill(signal) },
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    restart: async () => {
      if (stopped) throw new Error('restart() after stop(): the server and its directory are gone')
      await terminate('SIGTERM')
      child = await launch(spec)
    },
    stop: async () => {
      if (stopped) return
      stopped = true
      await terminate('SIGKILL')
      cleanup()
    }
  }
}

/**
 * Starts a redis-server on a free loopback port with its own data directory.
 * Nothing is saved unless `appendonly` is asked for. The server dies with the
 * test process, however that ends.
 */
export async function startRedis (options: StartRedisOptions = {}): Promise<TestRedis> {
  const binary = redisBinary('redis-server')
  const ownDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'baton-redis-'))
  mkdirSync(dir, { recursive: true })
  const args = ['--save', '', '--appendonly', options.appendonly === true ? 'yes' : 'no', ...(options.extraArgs ?? [])]
  try {
    const { child, spec } = await launchOnFreePort(async (port) => ({ binary, port, dir, args }))
    return handleFor(spec, child, () => { if (ownDir) rmSync(dir, { recursive: true, force: true }) })
  } catch (error) {
    if (ownDir) rmSync(dir, { recursive: true, force: true })
    throw error
  }
}

/**
 * Starts a master, its replicas and Sentinels watching it, on loopback, with
 * down-after 1 s so failover tests run quickly. Resolves once every replica
 * is in sync and every Sentinel knows the master and its replicas.
 */
export async function startRedisSentinel (options: StartRedisSentinelOptions = {}): Promise<TestRedisSentinel> {
  const name = options.name ?? 'baton'
  const binary = redisBinary('redis-server')
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-sentinel-'))
  const servers: TestRedis[] = []
  const sentinels: TestRedis[] = []
  const stop = async (): Promise<void> => {
    await Promise.all([...sentinels, ...servers].map(async (handle) => { await handle.stop() }))
    rmSync(dir, { recursive: true, force: true })
  }
  const start = async (build: (port: number) => Pick<ServerSpec, 'args' | 'configFile'>): Promise<TestRedis> => {
    const { child, spec } = await launchOnFreePort(async (port) => ({ binary, port, dir, ...build(port) }))
    return handleFor(spec, child, () => {})
  }

  try {
    servers.push(await start(() => ({ args: ['--save', '', '--appendonly', 'no', '--dbfilename', 'master.rdb'] })))
    const master = servers[0]!
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      servers.push(await start((port) => ({ args: ['--save', '', '--appendonly', 'no', '--dbfilename', `replica-${port}.rdb`, '--replicaof', HOST, String(master.port), '--repl-diskless-sync-delay', '0'] })))
    }
    for (let i = 0; i < (options.sentinels ?? 1); i++) {
      sentinels.push(await start((port) => {
        // Sentinel rewrites its configuration file as it learns; each needs one of its own.
        const configFile = join(dir, `sentinel-${port}.conf`)
        writeFileSync(configFile, [
          `sentinel monitor ${name} ${HOST} ${master.port} 1`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          ''
        ].join('\n'))
        return { configFile, args: ['--sentinel'] }
      }))
    }
    await waitFor('every replica in sync', 30_000, async () => {
      for (const replica of servers.slice(1)) {
        if (infoField(await redisCommand(replica.port, ['INFO', 'replication']), 'master_link_status') !== 'up') return false
      }
      return true
    })
    await waitFor('every Sentinel to know the replicas', 30_000, async () => {
      for (const sentinel of sentinels) {
        const info = await redisCommand(sentinel.port, ['INFO', 'sentinel'])
        if (!new RegExp(`name=${name},status=ok,address=${HOST}:${master.port},slaves=${servers.length - 1},`).test(String(info))) return false
      }
      return true
    })
  } catch (error) {
    await stop()
    throw error
  }

  return {
    name,
    sentinels: sentinels.map((sentinel) => ({ host: sentinel.host, port: sentinel.port })),
    server: (index) => {
      const handle = servers[index]
      if (handle === undefined) throw new RangeError(`no server ${index} of ${servers.length}`)
      return handle
    },
    masterPort: async () => {
      const info = String(await redisCommand(sentinels[0]!.port, ['INFO', 'sentinel']))
      const port = new RegExp(`name=${name},status=\\w+,address=[^:]+:(\\d+)`).exec(info)?.[1]
      if (port === undefined) throw new Error(`the Sentinel does not know ${name}`)
      return Number(port)
    },
    stop
  }
}

async function waitFor (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`test redis: timed out after ${timeoutMs} ms waiting for ${what}`)
}

/**
 * Starts a Redis Cluster on loopback: `masters` masters with
 * `replicasPerMaster` replicas each (3 + 3 by default), node timeout 1 s so
 * failover tests run quickly. Resolves once every node reports
 * `cluster_state:ok`, knows every other node, and every replica is in sync.
 */
export async function startRedisCluster (options: StartRedisClusterOptions = {}): Promise<TestRedisCluster> {
  const masters = options.masters ?? 3
  const replicas = options.replicasPerMaster ?? 1
  if (!Number.isInteger(masters) || masters < 3) throw new Error('a Redis Cluster needs at least 3 masters')
  if (!Number.isInteger(replicas) || replicas < 0) throw new Error('replicasPerMaster must be an integer >= 0')
  const binary = redisBinary('redis-server')
  const cli = redisBinary('redis-cli')
  const dir = mkdtempSync(join(tmpdir(), 'baton-redis-cluster-'))
  const handles: TestRedis[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(handles.map(async (handle) => { await handle.stop() }))
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const { child, spec } = await launchOnFreePort(async (port) => {
        // The cluster bus needs a port of its own; the default, port + 10000,
        // may be taken or beyond 65535 for an ephemeral port.
        let busPort = await freePort()
        while (busPort === port) busPort = await freePort()
        return {
          binary,
          port,
          dir,
          args: [
            '--save', '', '--appendonly', 'no',
            '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
            '--cluster-node-timeout', '1000', '--cluster-port', String(busPort),
            // Replicas would otherwise wait 5 s for more replicas to share one sync.
            '--repl-diskless-sync-delay', '0'
          ]
        }
      })
      handles.push(handleFor(spec, child, () => {}))
    }

    const created = spawnSync(cli, [
      '--cluster', 'create', ...handles.map((handle) => `${HOST}:${handle.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes'
    ], { encoding: 'utf8', timeout: 60_000 })
    if (created.status !== 0) {
      throw new Error(`redis-cli --cluster create failed (${created.status ?? created.signal}): ${`${created.stdout}\n${created.stderr}`.trim().split('\n').slice(-5).join('\n')}`)
    }

    await waitFor('cluster_state:ok on every node', 30_000, async () => {
      for (const handle of handles) {
        const info = await redisCommand(handle.port, ['CLUSTER', 'INFO'])
        if (infoField(info, 'cluster_state') !== 'ok') return false
        if (infoField(info, 'cluster_known_nodes') !== String(handles.length)) return false
        if (infoField(info, 'cluster_slots_ok') !== '16384') return false
        // A node that has not yet learnt an address (its own, or another's) lists it as ":port": a
        // client that takes its slot map then and a fuller one later drops the connection in between.
        const nodes = String(await redisCommand(handle.port, ['CLUSTER', 'NODES']))
        if (nodes.split('\n').some((line) => line.split(' ')[1]?.startsWith(':') === true)) return false
      }
      return true
    })
    await waitFor('every replica in sync', 30_000, async () => {
      for (const handle of handles) {
        const info = await redisCommand(handle.port, ['INFO', 'replication'])
        if (infoField(info, 'role') === 'slave' && infoField(info, 'master_link_status') !== 'up') return false
      }
      return true
    })
  } catch (error) {
    await stop()
    throw error
  }

  return {
    nodes: handles.map((handle) => ({ host: handle.host, port: handle.port })),
    seeds: handles.map((handle) => handle.url).join(','),
    node: (index) => {
      const handle = handles[index]
      if (handle === undefined) throw new RangeError(`no node ${index} in a cluster of ${handles.length}`)
      return handle
    },
    stop
  }
}

/** A clock a test moves by hand, handed to the code under test as its `now`. */
export interface TestClock {
  now: () => number
  advance: (ms: number) => void
}

/** A {@link TestClock} at `start` (ms since the epoch; default: now). */
export function testClock (start = Date.now()): TestClock {
  let current = start
  return { now: () => current, advance: (ms) => { current += ms } }
}
