// docs/protect-your-api.md shows the examples that pack.test.ts runs: each
// file of docs/examples, verbatim, in the block after its marker.
import { access, readdir, readFile } from 'node:fs/promises'
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

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as
// hyphens, and -1, -2 … after a repeated one.
const anchors = (markdown: string): Set<string> => {
  const seen = new Map<string, number>()
  const found = new Set<string>()
  for (const [, heading] of outsideCode(markdown).matchAll(/^#{1,6} (.*)$/gm)) {
    const slug = heading!.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    found.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return found
}
const outsideCode = (markdown: string): string => markdown.replace(/^```[\s\S]*?^```/gm, '')

t.test('every relative link in the README, SECURITY.md and docs/ leads to a file and heading that exist', async (t) => {
  const pages = ['README.md', 'SECURITY.md', ...(await readdir(new URL('docs/', root))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
  for (const page of pages) {
    const here = new URL(page, root)
    for (const [, target] of outsideCode(await readFile(here, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      const [path, anchor] = target!.split('#')
      const file = path === '' ? here : new URL(path!, here)
      const exists = await access(file).then(() => true, () => false)
      t.ok(exists, `${page}: ${target!} names a file that exists`)
      if (exists && anchor !== undefined) t.ok(anchors(await readFile(file, 'utf8')).has(anchor), `${page}: ${target!} names a heading that exists`)
    }
  }
})
