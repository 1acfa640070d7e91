// Starting and stopping the processes under test: each is `node <script>`
// (never through pnpm, which would SIGKILL its group), optionally under
// bench/cluster.mjs for several workers, optionally with --cpu-prof.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const CLUSTER = fileURLToPath(new URL('../cluster.mjs', import.meta.url))

/**
 * Starts `node script` with `env`; with `processes > 1` the script runs in
 * that many cluster workers sharing one port. Resolves once `readyUrl` answers 200.
 */
export async function startService ({ name, script, args = [], env, processes = 1, readyUrl, profileDir }) {
  // One directory per service: Node names each profile after its process id.
  const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', `${profileDir}${name}`]
  const argv = processes > 1
    ? [...nodeArgs, CLUSTER, String(processes), script, ...args]
    : [...nodeArgs, script, ...args]
  const child = spawn(process.execPath, argv, {
    env: { ...process.env, ...env, BENCH_PROFILE_ARGS: nodeArgs.join(' ') },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000) })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited during start-up (${child.exitCode}): ${stderr}`)
    try {
      const response = await fetch(readyUrl, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === 200) break
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} not ready within 20 s: ${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    name,
    pid: child.pid,
    /** Resident set size of the service in bytes: the process and, under cluster, its workers. */
    rss: () => [child.pid, ...childrenOf(child.pid)].reduce((sum, pid) => sum + rssOf(pid), 0),
    /** SIGTERM, then the exit status; SIGKILL after 15 s. */
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return await exited
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      const result = await exited
      clearTimeout(timer)
      return result
    }
  }
}

function rssOf (pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

function childrenOf (parent) {
  const children = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // The command name in parentheses may hold spaces: the fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === parent) children.push(Number(entry))
    } catch {}
  }
  return children
}
