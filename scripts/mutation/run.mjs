#!/usr/bin/env node
// Mutation testing of Baton's security checks: each mutant in mutants.mjs
// takes one protection out of the source, in place; the test files that
// should notice run against it, and the source is put back. A mutant the
// tests do not notice (a survivor) must be explained in SURVIVORS.md, or the
// run fails.
//
//   node scripts/mutation/run.mjs                  every mutant
//   node scripts/mutation/run.mjs --module verifier/checks --mutant rotate/family
//   node scripts/mutation/run.mjs --list           the mutants, and nothing run
//   node scripts/mutation/run.mjs --baseline       the selected kill tests, unmutated (they must pass)
//   node scripts/mutation/run.mjs --no-generated   hand-written mutants only
//
// Workspace packages resolve to their built dist/, so run it after a build
// (`pnpm mutation` builds first).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { GENERATED_CAP, MODULES, MUTANTS, PROTECTIONS } from './mutants.mjs'
import { generateMutants } from './generate.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const STATE = join(HERE, '.state')
const BACKUP = join(STATE, 'backup.json')
const LOGS = join(STATE, 'logs')
const SURVIVORS_FILE = join(HERE, 'SURVIVORS.md')
const DEFAULT_TIMEOUT_S = 150

// ---------------------------------------------------------------- options

function parseArgs (argv) {
  const options = { modules: [], mutants: [], list: false, baseline: false, generated: true, timeout: DEFAULT_TIMEOUT_S }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const next = argv[++i]
      if (next === undefined) fail(`${arg} needs a value`)
      return next
    }
    if (arg === '--module') options.modules.push(value())
    else if (arg === '--mutant') options.mutants.push(value())
    else if (arg === '--list') options.list = true
    else if (arg === '--baseline') options.baseline = true
    else if (arg === '--no-generated') options.generated = false
    else if (arg === '--timeout') options.timeout = Number(value())
    else if (arg === '--help' || arg === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 16).map((line) => line.replace(/^\/\/ ?/, '')).join('\n'))
      process.exit(0)
    } else fail(`unknown option ${arg}`)
  }
  return options
}

function fail (message) {
  console.error(`mutation: ${message}`)
  process.exit(2)
}

// ---------------------------------------------------------------- restoring what a run changed

// Every file is restored from here, also after a crash or a kill: the next run starts by putting back what the last one left.
function restoreFromBackup (why) {
  if (!existsSync(BACKUP)) return
  const saved = JSON.parse(readFileSync(BACKUP, 'utf8'))
  for (const [path, content] of Object.entries(saved)) writeFileSync(join(ROOT, path), content)
  rmSync(BACKUP)
  if (why !== undefined) console.error(`mutation: restored ${Object.keys(saved).join(', ')} (${why})`)
}

function saveBackup (files) {
  mkdirSync(STATE, { recursive: true })
  const saved = {}
  for (const path of files) saved[path] = readFileSync(join(ROOT, path), 'utf8')
  writeFileSync(BACKUP, JSON.stringify(saved))
}

// The test process group running now, ended with the run.
let running

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (running !== undefined) try { process.kill(-running, 'SIGKILL') } catch {}
    restoreFromBackup(`stopped by ${signal}`)
    process.exit(130)
  })
}

// ---------------------------------------------------------------- mutants

/** A mutant's edits applied to a text; throws when a snippet is missing or not unique (the code moved on: fix the mutant). */
function applyEdits (text, mutant) {
  let result = text
  for (const { find, replace } of mutant.edits) {
    const count = result.split(find).length - 1
    if (count !== 1) throw new Error(`${mutant.id}: the snippet ${JSON.stringify(find.slice(0, 80))} occurs ${count} times in ${MODULES[mutant.module].path}`)
    result = result.replace(find, () => replace)
  }
  return result
}

function normalizeTests (list) {
  return list.map((entry) => typeof entry === 'string' ? { file: entry, grep: [] } : { file: entry.file, grep: entry.grep ?? [] })
}

function allMutants (options) {
  const hand = MUTANTS.map((mutant) => ({
    ...mutant,
    edits: mutant.edits ?? [{ find: mutant.find, replace: mutant.replace }],
    generated: false
  }))
  const generated = options.generated ? generateMutants(ROOT, MODULES, GENERATED_CAP, hand) : []
  return [...hand, ...generated].map((mutant) => ({
    ...mutant,
    tests: normalizeTests(mutant.tests ?? MODULES[mutant.module].tests)
  }))
}

function checkTables (mutants) {
  const problems = []
  const ids = new Set()
  for (const mutant of mutants) {
    if (ids.has(mutant.id)) problems.push(`${mutant.id}: two mutants have this id`)
    ids.add(mutant.id)
    const module = MODULES[mutant.module]
    if (module === undefined) { problems.push(`${mutant.id}: unknown module ${mutant.module}`); continue }
    if (!mutant.generated && !(mutant.protection in PROTECTIONS)) problems.push(`${mutant.id}: unknown protection ${mutant.protection}`)
    try {
      applyEdits(readFileSync(join(ROOT, module.path), 'utf8'), mutant)
    } catch (error) {
      problems.push(error.message)
    }
    for (const { file } of mutant.tests) if (!existsSync(join(ROOT, file))) problems.push(`${mutant.id}: no test file ${file}`)
  }
  const removed = new Set(mutants.filter((mutant) => !mutant.generated).map((mutant) => mutant.protection))
  for (const protection of Object.keys(PROTECTIONS)) {
    if (!removed.has(protection)) problems.push(`protection ${protection} has no mutant that removes it`)
  }
  return problems
}

// ---------------------------------------------------------------- building what other packages import

let typescript
function transpiled (source, fileName) {
  typescript ??= createRequire(join(ROOT, 'package.json'))('typescript')
  return typescript.transpileModule(source, {
    fileName,
    compilerOptions: { target: typescript.ScriptTarget.ES2022, module: typescript.ModuleKind.ESNext, verbatimModuleSyntax: true }
  }).outputText
}

/** packages/x/src/a/b.ts → packages/x/dist/a/b.js: what other workspace packages import. */
const distOf = (path) => path.replace(/\/src\//, '/dist/').replace(/\.ts$/, '.js')

// ---------------------------------------------------------------- running tests

function tapLoader (pkg) {
  const tapRequire = createRequire(realpathSync(join(ROOT, 'node_modules', 'tap', 'package.json')))
  const manifestPath = tapRequire.resolve(`${pkg}/package.json`)
  const target = JSON.parse(readFileSync(manifestPath, 'utf8')).exports['./import'].import
  return pathToFileURL(join(dirname(manifestPath), typeof target === 'string' ? target : target.default)).href
}

// The loaders `tap` puts in front of each test file (TypeScript, t.mockImport); running the file under node
// directly skips the runner's own start-up, which on a busy machine costs more than a small test file.
const NODE_ARGS = [`--import=${tapLoader('@tapjs/typescript')}`, `--import=${tapLoader('@tapjs/mock')}`, '--enable-source-maps']

/** Runs one test file (with its grep), niced, as its own process group: 'pass', 'fail' or 'timeout', and its output. */
function runTest ({ file, grep }, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn('nice', ['-n', '10', process.execPath, ...NODE_ARGS, file], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TS_NODE_TRANSPILE_ONLY: '1',
        TAP_BAIL: '1',
        TAP_TIMEOUT: '0',
        ...(grep.length > 0 ? { TAP_GREP: grep.join('\n') } : {}),
        FORCE_COLOR: '0'
      }
    })
    running = child.pid
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
    }, timeoutS * 1000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      running = undefined
      // Whatever the test file started in its group (redis-servers) goes with it.
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
      resolve({ result: timedOut ? 'timeout' : code === 0 && signal === null ? 'pass' : 'fail', output })
    })
  })
}

const label = ({ file, grep }) => `${relative(ROOT, join(ROOT, file)).replace(/^.*\/test\//, '')}${grep.length > 0 ? ` › ${grep.join(' › ')}` : ''}`

/** The first failing line of a TAP output: what the mutant broke. */
function firstFailure (output) {
  const lines = output.split('\n')
  const index = lines.findIndex((line) => /^\s*not ok /.test(line))
  return index === -1 ? undefined : lines[index].trim().slice(0, 160)
}

async function runMutant (mutant, timeoutS) {
  const module = MODULES[mutant.module]
  const files = [module.path, ...(module.build === 'dist' ? [distOf(module.path)] : [])]
  saveBackup(files)
  const started = Date.now()
  const outcome = { status: 'survived', by: undefined, detail: undefined }
  try {
    const original = readFileSync(join(ROOT, module.path), 'utf8')
    const mutated = applyEdits(original, mutant)
    writeFileSync(join(ROOT, module.path), mutated)
    if (module.build === 'dist') writeFileSync(join(ROOT, distOf(module.path)), transpiled(mutated, module.path))
    for (const test of mutant.tests) {
      const { result, output } = await runTest(test, mutant.timeout ?? timeoutS)
      mkdirSync(LOGS, { recursive: true })
      writeFileSync(join(LOGS, `${mutant.id.replace(/[^\w.-]+/g, '_')}.log`), output)
      if (result === 'pass') continue
      outcome.status = result === 'timeout' ? 'timeout' : 'killed'
      outcome.by = label(test)
      outcome.detail = result === 'timeout' ? `no answer within ${mutant.timeout ?? timeoutS} s` : firstFailure(output)
      break
    }
  } finally {
    restoreFromBackup()
  }
  return { ...outcome, seconds: (Date.now() - started) / 1000 }
}

// ---------------------------------------------------------------- survivors explained

/** `id` → reason, from the table rows of SURVIVORS.md whose first cell is a mutant id in backticks. */
function explainedSurvivors () {
  const reasons = new Map()
  if (!existsSync(SURVIVORS_FILE)) return reasons
  for (const line of readFileSync(SURVIVORS_FILE, 'utf8').split('\n')) {
    const match = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line)
    if (match === null) continue
    const reason = match[2].split('|').at(-1).trim()
    if (reason !== '') reasons.set(match[1], reason)
  }
  return reasons
}

// ---------------------------------------------------------------- main

function git (...args) {
  return spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' })
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  restoreFromBackup('left by an earlier run that did not finish')

  let mutants = allMutants(options)
  const problems = checkTables(mutants)
  if (problems.length > 0) fail(`the mutant tables do not match the code:\n  ${problems.join('\n  ')}`)
  for (const name of options.modules) if (!(name in MODULES)) fail(`unknown module ${name}; known: ${Object.keys(MODULES).join(', ')}`)
  if (options.modules.length > 0 || options.mutants.length > 0) {
    mutants = mutants.filter((mutant) => options.modules.includes(mutant.module) || options.mutants.includes(mutant.id))
  }

  if (options.list) {
    for (const mutant of mutants) console.log(`${mutant.id.padEnd(36)} ${mutant.description}\n${''.padEnd(37)}→ ${mutant.tests.map(label).join('; ')}`)
    console.log(`${mutants.length} mutants`)
    return
  }

  const paths = [...new Set(mutants.map((mutant) => MODULES[mutant.module].path))]
  if (git('diff', '--quiet', '--', ...paths).status !== 0) {
    fail(`uncommitted changes in ${git('diff', '--name-only', '--', ...paths).stdout.trim().split('\n').join(', ')}: commit them first, a mutant is applied in place`)
  }

  if (options.baseline) {
    const units = new Map(mutants.flatMap((mutant) => mutant.tests).map((test) => [label(test), test]))
    let failed = 0
    for (const [name, test] of units) {
      const started = Date.now()
      const { result, output } = await runTest(test, options.timeout)
      console.log(`${result.padEnd(8)} ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)${result === 'pass' ? '' : `\n         ${firstFailure(output) ?? ''}`}`)
      if (result !== 'pass') failed++
    }
    process.exit(failed === 0 ? 0 : 1)
  }

  const startedAt = Date.now()
  const results = []
  for (const [index, mutant] of mutants.entries()) {
    const outcome = await runMutant(mutant, options.timeout)
    results.push({ mutant, ...outcome })
    const where = outcome.by === undefined ? '' : ` by ${outcome.by}`
    console.log(`[${String(index + 1).padStart(3)}/${mutants.length}] ${outcome.status.padEnd(8)} ${mutant.id.padEnd(34)} ${outcome.seconds.toFixed(1).padStart(5)} s${where}`)
    if (outcome.status === 'survived') console.log(`          ${mutant.description}`)
  }
  if (git('diff', '--quiet', '--', ...paths).status !== 0) fail('a source file differs from git after the run: check git diff')

  // Scores per module.
  console.log('\nmodule                          killed  timeout  survived  score')
  for (const [name, module] of Object.entries(MODULES)) {
    const own = results.filter((result) => result.mutant.module === name)
    if (own.length === 0) continue
    const count = (status) => own.filter((result) => result.status === status).length
    const caught = count('killed') + count('timeout')
    console.log(`${name.padEnd(31)} ${String(count('killed')).padStart(6)} ${String(count('timeout')).padStart(8)} ${String(count('survived')).padStart(9)}  ${caught}/${own.length}  ${module.path}`)
  }
  const caught = results.filter((result) => result.status !== 'survived').length
  console.log(`total                           ${caught}/${results.length} caught (${results.filter((result) => result.status === 'timeout').length} by timeout) in ${((Date.now() - startedAt) / 60_000).toFixed(1)} min`)

  // Survivors, each explained in SURVIVORS.md or failing the run.
  const reasons = explainedSurvivors()
  const survivors = results.filter((result) => result.status === 'survived')
  const unexplained = survivors.filter((result) => !reasons.has(result.mutant.id))
  if (survivors.length > 0) {
    console.log('\nsurvivors:')
    for (const { mutant } of survivors) {
      const protection = mutant.generated ? 'generated' : PROTECTIONS[mutant.protection]
      console.log(`  ${mutant.id} (${MODULES[mutant.module].path}): ${mutant.description}\n    removes: ${protection}\n    ${reasons.has(mutant.id) ? `explained: ${reasons.get(mutant.id)}` : 'NOT EXPLAINED in scripts/mutation/SURVIVORS.md'}`)
    }
  }
  const stale = results.filter((result) => result.status !== 'survived' && reasons.has(result.mutant.id))
  for (const { mutant } of stale) console.log(`note: ${mutant.id} is killed now; its entry in SURVIVORS.md can go`)
  if (unexplained.length > 0) {
    console.log(`\n${unexplained.length} survivor(s) without a reason in scripts/mutation/SURVIVORS.md`)
    process.exit(1)
  }
}

await main()
