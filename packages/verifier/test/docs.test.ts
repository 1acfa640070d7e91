// docs/protect-your-api.md shows the examples that pack.test.ts runs: each
// file of docs/examples, verbatim, in the block after its marker.
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = new URL('../../../', import.meta.url)
const MARKER = /<!-- example: (docs\/examples\/[\w.-]+) -->\n```js\n([\s\S]*?)```\n/g

t.test('every example in docs/examples appears in the guide exactly as the file holds it', async (t) => {
  const doc = await readFile(new URL('docs/protect-your-api.md', root), 'utf8')
  const shown = [...doc.matchAll(MARKER)].map(([, path, code]) => ({ path: path!, code: code! }))
  const files = (await readdir(new URL('docs/examples/', root))).filter((name) => name.endsWith('.mjs')).map((name) => `docs/examples/${name}`)
  t.same(shown.map(({ path }) => path).sort(), files.sort(), 'each example file is shown once, and nothing else is marked as one')
  for (const { path, code } of shown) {
    t.equal(code, await readFile(fileURLToPath(new URL(path, root)), 'utf8'), `${path} is shown verbatim`)
  }
  t.equal(doc.match(/```js\n/g)?.length, shown.length, 'every JavaScript block on the page is a tested example')
})

t.test('the README links to the guide', async (t) => {
  t.match(await readFile(new URL('README.md', root), 'utf8'), /\]\(docs\/protect-your-api\.md\)/)
})
