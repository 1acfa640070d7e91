import t from 'tap'
import fc from 'fast-check'
import { fuzzOptions } from '../../../packages/verifier/test/arbitraries.js'
import { canonicalUsername, caseFold, displayUsername, usernameProblem } from '../src/core/accounts/username.js'

t.test('full case folding, as CaseFolding.txt has it', async (t) => {
  const cases: Array<[string, string]> = [
    ['STRASSE', 'strasse'], ['straße', 'strasse'], ['STRAẞE', 'strasse'],
    ['ΟΔΟΣ', 'οδοσ'], ['οδος', 'οδοσ'], ['Σ', 'σ'],
    ['İ', 'i\u0307'], ['ı', 'ı'], ['ŉ', 'ʼn'], ['ﬃ', 'ffi'], ['ᾳ', 'αι'], ['K', 'k'], ['ſ', 's'],
    ['ꭰ', 'Ꭰ'], ['Ꭰ', 'Ꭰ']
  ]
  for (const [input, folded] of cases) t.equal(caseFold(input), folded, `${input} folds to ${folded}`)
})

t.test('the canonical form: width, case and normalization differences vanish', async (t) => {
  t.equal(canonicalUsername('ＦＯＯ'), 'foo')
  t.equal(canonicalUsername('ﾊﾞﾄﾝ'), 'バトン', 'halfwidth katakana and its voiced mark compose')
  t.equal(canonicalUsername('JOSE\u0301'), 'jos\u00e9')
  t.equal(displayUsername('ＦＯＯ'), 'FOO', 'shown as written, but narrow')
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 20 }), (name) => {
    const canonical = canonicalUsername(name)
    return canonicalUsername(canonical) === canonical && canonicalUsername(name.toUpperCase()) === canonicalUsername(name.toLowerCase())
  }), fuzzOptions(500))
})

t.test('what may be registered', async (t) => {
  for (const name of ['alice', 'Ωμέγα', 'иван', '山田たろう', 'yamada山田', 'kim김철수', 'שלום1', 'राम']) t.equal(usernameProblem(name), undefined, name)
  for (const name of ['\u0430dmin', 'Ωmega', 'ab c', 'a\u200bb', '\u3164abc', 'x\u{E0041}y', '\u{10FFFF}abc', 'ab\u{E000}']) t.type(usernameProblem(name), 'string', JSON.stringify(name))
})
