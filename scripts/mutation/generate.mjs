// Mutants made by simple operators over the TypeScript modules: a flipped
// equality, a moved boundary, a swapped && / ||, a dropped `throw` or
// `return` guard. Each one names its line by text, not number, so it follows
// the code when lines or files move; its id is a digest of that text, so an
// explanation in SURVIVORS.md stays attached to it.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const OPERATORS = [
  { name: 'flip ===', pattern: / === /g, replacement: ' !== ' },
  { name: 'flip !==', pattern: / !== /g, replacement: ' === ' },
  { name: '< to <=', pattern: / < /g, replacement: ' <= ' },
  { name: '<= to <', pattern: / <= /g, replacement: ' < ' },
  { name: '> to >=', pattern: / > /g, replacement: ' >= ' },
  { name: '>= to >', pattern: / >= /g, replacement: ' > ' },
  { name: '&& to ||', pattern: / && /g, replacement: ' || ' },
  { name: '|| to &&', pattern: / \|\| /g, replacement: ' && ' }
]

// One-line guards: `if (…) throw …` and `if (…) return …`, dropped whole.
const GUARD = /^(\s*)if \(.*\) (?:throw|return)\b.*$/

const digest = (text) => createHash('sha1').update(text).digest('hex').slice(0, 8)

function isCode (line) {
  const trimmed = line.trim()
  return trimmed !== '' && !trimmed.startsWith('//') && !trimmed.startsWith('*') && !trimmed.startsWith('/*') && !trimmed.startsWith('import ')
}

/** Every candidate of one module: the line (unique in its file), and the line mutated. */
function candidates (name, source) {
  const found = []
  for (const line of source.split('\n')) {
    if (!isCode(line) || source.split(line).length !== 2) continue
    // Operators inside string literals would only change messages.
    const code = line.replace(/'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\/(?:[^/\\\n]|\\.)+\/[a-z]*/g, (literal) => ' '.repeat(literal.length))
    for (const operator of OPERATORS) {
      for (const match of code.matchAll(operator.pattern)) {
        const mutated = line.slice(0, match.index) + operator.replacement + line.slice(match.index + match[0].length)
        found.push({ module: name, operator: operator.name, find: line, replace: mutated })
      }
    }
    const guard = GUARD.exec(line)
    // Only a guard whole on its line: dropping half a statement would fail to compile, not test anything.
    const balanced = (code.match(/\(/g) ?? []).length === (code.match(/\)/g) ?? []).length
    if (guard !== null && balanced && !/[{,]$/.test(line.trimEnd())) {
      found.push({ module: name, operator: 'drop guard', find: line, replace: `${guard[1]}// (guard dropped)` })
    }
  }
  return found
}

/**
 * Up to `cap[module]` (or the module's `generated`) mutants per TypeScript
 * module, picked by digest so the same code always gives the same picks.
 */
export function generateMutants (root, modules, cap, handWritten = []) {
  // A line a hand-written mutant already changes is left to it.
  const taken = new Set(handWritten.flatMap((mutant) => mutant.edits.map(({ find }) => `${mutant.module}\n${find.trim()}`)))
  const mutants = []
  for (const [name, module] of Object.entries(modules)) {
    const count = cap[name] ?? 0
    if (count === 0 || !module.path.endsWith('.ts')) continue
    const source = readFileSync(join(root, module.path), 'utf8')
    const picked = candidates(name, source)
      .filter((candidate) => !taken.has(`${name}\n${candidate.find.trim()}`))
      .map((candidate) => ({ ...candidate, key: digest(`${candidate.operator}\n${candidate.find}\n${candidate.replace}`) }))
      .sort((a, b) => a.key.localeCompare(b.key))
      .slice(0, count)
    for (const candidate of picked) {
      mutants.push({
        id: `${name}~${candidate.key}`,
        module: name,
        description: `${candidate.operator}: ${candidate.find.trim().slice(0, 110)}`,
        edits: [{ find: candidate.find, replace: candidate.replace }],
        generated: true
      })
    }
  }
  return mutants
}
