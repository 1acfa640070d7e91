// node bench/profile-summary.mjs <file.cpuprofile> [top]
// The functions a V8 CPU profile (node --cpu-prof) spent the most self time
// in, as shares of the busy (non-idle) time.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** A text table of the `top` functions by self time, with their share of all samples. */
export function summarizeProfile (path, top = 20) {
  const profile = JSON.parse(readFileSync(path, 'utf8'))
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfMicros = new Map()
  const deltas = profile.timeDeltas ?? []
  profile.samples.forEach((id, i) => { selfMicros.set(id, (selfMicros.get(id) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0)) })
  const byFunction = new Map()
  const byModule = new Map()
  let total = 0
  for (const [id, micros] of selfMicros) {
    const { callFrame } = nodes.get(id)
    const where = callFrame.url === '' ? '' : ` ${callFrame.url.replace(/^file:\/\/.*?\/node_modules\/\.pnpm\/([^/]+)\/node_modules\//, '$1/').replace(/^file:\/\/.*?\/(packages|services)\//, '$1/')}:${callFrame.lineNumber + 1}`
    const name = `${callFrame.functionName || '(anonymous)'}${where}`
    if (name === '(idle)') continue
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros)
    const module = moduleOf(callFrame.url)
    byModule.set(module, (byModule.get(module) ?? 0) + micros)
    total += micros
  }
  const table = (map, rows) => [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)
    .map(([name, micros]) => `${(100 * micros / total).toFixed(1).padStart(5)} %  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`).join('\n')
  return `${table(byFunction, top)}\n  by package:\n${table(byModule, 12)}`
}

/** The package (or node internals, or native code) a function's source belongs to. */
function moduleOf (url) {
  if (url === '') return '(native, GC, idle)'
  if (url.startsWith('node:')) return 'node internals'
  const dependency = /\/node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (dependency !== null) return dependency[1]
  const own = /\/(packages|services)\/([^/]+)\//.exec(url)
  return own === null ? url : `@baton/${own[2]}`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [path, top] = process.argv.slice(2)
  if (path === undefined) {
    process.stderr.write('usage: node bench/profile-summary.mjs <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  process.stdout.write(`${summarizeProfile(path, Number(top ?? 20))}\n`)
}
