// node bench/cluster.mjs <workers> <script> [args…]
// Runs <script> in <workers> cluster workers that share its listening port
// (Node 20 has no reusePort; cluster hands connections round-robin). SIGTERM
// or SIGINT is passed to every worker, which closes gracefully; the primary
// exits 0 once all have exited 0.
import cluster from 'node:cluster'

const [count, script, ...args] = process.argv.slice(2)
const workers = Number(count)
if (!Number.isSafeInteger(workers) || workers < 1 || script === undefined) {
  process.stderr.write('usage: node bench/cluster.mjs <workers> <script> [args…]\n')
  process.exit(2)
}

const profileArgs = (process.env.BENCH_PROFILE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
cluster.setupPrimary({ exec: script, args, execArgv: profileArgs })
let failed = false
let stopping = false
for (let i = 0; i < workers; i++) cluster.fork()
cluster.on('exit', (worker, code, signal) => {
  if (code !== 0) failed = true
  if (!stopping) {
    process.stderr.write(`worker ${worker.process.pid} exited (${code ?? signal}) before it was told to stop\n`)
    stop()
  }
  if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(failed ? 1 : 0)
})

function stop () {
  if (stopping) return
  stopping = true
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
