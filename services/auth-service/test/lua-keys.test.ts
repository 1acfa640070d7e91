import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'

// Redis Cluster routes a script by the keys it declares, and only those are
// guaranteed to be on the node that runs it: no script may touch a key it
// built itself (a prefix joined to an id read from an index, say).
const LUA_DIR = new URL('../lua/', import.meta.url)

t.test('every key a script touches comes from KEYS', async (t) => {
  const files = readdirSync(LUA_DIR).filter((file) => file.endsWith('.lua'))
  t.ok(files.length >= 10, `${files.length} scripts`)
  for (const file of files) {
    // Comments name keys too; only code counts.
    const code = readFileSync(new URL(file, LUA_DIR), 'utf8').replace(/--\[\[[\s\S]*?\]\]/g, '').replace(/--.*$/gm, '')
    // XINFO STREAM <key>: a subcommand comes before the key.
    const calls = [...code.matchAll(/redis\.(?:p?call)\(\s*'(\w+)'\s*,\s*(?:'(?:STREAM|GROUPS|CONSUMERS)'\s*,\s*)?([^,)]+)/g)]
    t.ok(calls.length > 0, `${file} calls Redis`)
    for (const [, command, key] of calls) {
      t.match(key!.trim(), /^(KEYS\[[^\]]+\]|declared\[[^\]]+\])$/, `${file}: ${command} ${key!.trim()}`)
    }
    // `declared` maps a sid to its key, and is filled only from KEYS.
    for (const [assignment] of code.matchAll(/declared\[[^\]]+\]\s*=[^=][^\n]*/g)) {
      t.match(assignment, /=\s*KEYS\[[^\]]+\]\s*$/, `${file}: ${assignment.trim()}`)
    }
    t.notMatch(code, /redis\.call\(\s*'(KEYS|SCAN)'/, `${file} neither lists nor scans keys`)
  }
})
