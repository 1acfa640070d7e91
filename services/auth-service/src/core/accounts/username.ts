/**
 * Usernames after RFC 8265 (PRECIS UsernameCaseMapped) and UTS #39.
 *
 * Two names are the same account when their canonical forms are equal:
 * width mapping (`ｆｏｏ` is `foo`), Unicode full case folding (`STRASSE`,
 * `Straße` and `strasse` are one name; so are `ΟΔΟΣ`, `οδοσ` and `οδος`),
 * then NFC. A new name must also be made only of what the PRECIS
 * IdentifierClass allows, pass the Bidi Rule, and keep to one script as
 * UTS #39's "highly restrictive" level asks (so a Cyrillic `а` cannot
 * stand in for a Latin `a`).
 *
 * No npm package implements PRECIS or a maintained UTS #39 check; the ones
 * that fold case or list confusables are one-release projects with data from
 * older Unicode versions. The Unicode data used here is the JavaScript
 * engine's own (case mappings, general categories, scripts), which follows
 * the Unicode version of the running Node.js.
 */

// The whole ASCII range, controls included, is the point of the check.
// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7F]*$/

// RFC 8265 §3.3.2 width mapping: the <wide> and <narrow> compatibility
// decompositions, which are the Halfwidth and Fullwidth Forms block and the
// ideographic space.
const WIDE_OR_NARROW = /[\u3000\uFF01-\uFFEE]/gu

function mapWidth (value: string): string {
  return value.replace(WIDE_OR_NARROW, (char) => char.normalize('NFKC'))
}

// Cherokee folds to its capitals (CaseFolding.txt, since Unicode 8); the rest
// of full case folding is lower(upper(lower(c))) code point by code point,
// which a scan of every code point against CaseFolding.txt's C and F
// mappings confirmed, but for U+0131 dotless i, which folds only under the
// Turkic (T) mappings that full folding leaves out.
const CHEROKEE = /\p{Script=Cherokee}/u
const DOTLESS_I = '\u0131'

function foldCodePoint (char: string): string {
  if (char === DOTLESS_I) return char
  if (CHEROKEE.test(char)) return char.toUpperCase()
  let folded = ''
  // One code point at a time: String.prototype.toLowerCase on a longer string would apply the final-sigma rule.
  for (const part of char.toLowerCase().toUpperCase()) folded += part.toLowerCase()
  return folded
}

/** Unicode full case folding (CaseFolding.txt, statuses C and F). */
export function caseFold (value: string): string {
  if (ASCII.test(value)) return value.toLowerCase()
  let folded = ''
  for (const char of value) folded += foldCodePoint(char)
  return folded
}

/**
 * The form in which usernames are compared and keyed: width mapping, then
 * full case folding of the decomposed form (Unicode's canonical caseless
 * match, so canonically equivalent spellings meet), then NFC. Any string has
 * one; whether it may be registered is {@link usernameProblem}'s question.
 */
export function canonicalUsername (value: string): string {
  if (ASCII.test(value)) return value.toLowerCase()
  return caseFold(mapWidth(value).normalize('NFD')).normalize('NFC')
}

/** How a new name is stored and shown: width-mapped and NFC, its case kept (RFC 8265 UsernameCasePreserved). */
export function displayUsername (value: string): string {
  return ASCII.test(value) ? value : mapWidth(value).normalize('NFC')
}

/** The key names had before this module: NFKC, then `toLowerCase()`. Accounts created then are still found by it. */
export function legacyUsernameKey (value: string): string {
  return value.normalize('NFKC').toLowerCase()
}

// --- RFC 8264 §9 IdentifierClass, by the derivation of RFC 8264 §8 -------

const codePoint = (char: string): number => char.codePointAt(0)!
const hex = (char: string): string => `U+${codePoint(char).toString(16).toUpperCase().padStart(4, '0')}`

// RFC 5892 §2.6 exceptions, shared by PRECIS (RFC 8264 §9.6).
const EXCEPTION_PVALID = new Set([0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007])
const EXCEPTION_DISALLOWED = new Set([0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B])
const UNASSIGNED = /\p{Cn}/u
const NONCHARACTER = /\p{Noncharacter_Code_Point}/u
const JOIN_CONTROL = /\p{Join_Control}/u
// Hangul_Syllable_Type L, V and T.
const OLD_HANGUL_JAMO = /[\u1100-\u11FF\uA960-\uA97C\uD7B0-\uD7C6\uD7CB-\uD7FB]/u
const IGNORABLE = /[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]/u
const CONTROL = /\p{Cc}/u
const LETTER_DIGIT = /[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]/u
const ARABIC_INDIC_DIGIT = /[\u0660-\u0669]/u
const EXTENDED_ARABIC_INDIC_DIGIT = /[\u06F0-\u06F9]/u

/** RFC 5892 Appendix A rules for the CONTEXTO code points; undefined for any other. */
function contextAllows (chars: readonly string[], index: number): boolean | undefined {
  const char = chars[index]!
  const before = chars[index - 1] ?? ''
  const after = chars[index + 1] ?? ''
  switch (codePoint(char)) {
    case 0x00B7: return before === 'l' && after === 'l'
    case 0x0375: return /\p{Script=Greek}/u.test(after)
    case 0x05F3: case 0x05F4: return /\p{Script=Hebrew}/u.test(before)
    case 0x30FB: return chars.some((other) => /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u.test(other))
  }
  if (ARABIC_INDIC_DIGIT.test(char)) return !chars.some((other) => EXTENDED_ARABIC_INDIC_DIGIT.test(other))
  if (EXTENDED_ARABIC_INDIC_DIGIT.test(char)) return !chars.some((other) => ARABIC_INDIC_DIGIT.test(other))
  return undefined
}

function identifierClassAllows (chars: readonly string[], index: number): boolean {
  const char = chars[index]!
  const cp = codePoint(char)
  if (EXCEPTION_PVALID.has(cp)) return true
  if (EXCEPTION_DISALLOWED.has(cp)) return false
  const contextual = contextAllows(chars, index)
  if (contextual !== undefined) return contextual
  if (UNASSIGNED.test(char) && !NONCHARACTER.test(char)) return false
  if (cp >= 0x21 && cp <= 0x7E) return true
  // CONTEXTJ: the joiners' rules serve scripts that write them between letters; names need neither, and an invisible character is a spoofing tool.
  if (JOIN_CONTROL.test(char)) return false
  if (OLD_HANGUL_JAMO.test(char) || IGNORABLE.test(char) || CONTROL.test(char)) return false
  if (char.normalize('NFKC') !== char) return false
  return LETTER_DIGIT.test(char)
}

// --- RFC 5893 Bidi Rule, for names that hold right-to-left characters -----

// Right-to-left is told by the ranges Unicode assigns to right-to-left
// scripts (their default Bidi_Class R or AL, DerivedBidiClass.txt): the
// engine exposes no Bidi_Class property, and within these ranges every letter is R or AL.
const RTL_RANGE = /[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF\u{10800}-\u{10FFF}\u{1E800}-\u{1EFFF}]/u
const LETTER = /\p{L}/u
const EUROPEAN_DIGIT = /[0-9\u06F0-\u06F9]/u
const ARABIC_DIGIT = /[\u0660-\u0669\u{10D30}-\u{10D39}\u{10E60}-\u{10E7E}]/u
const MARK = /\p{M}/u

const isRtlLetter = (char: string): boolean => LETTER.test(char) && RTL_RANGE.test(char)

function bidiProblem (chars: readonly string[]): string | undefined {
  if (!chars.some((char) => isRtlLetter(char) || ARABIC_DIGIT.test(char))) return undefined
  const strong = chars.filter((char) => !MARK.test(char))
  if (!isRtlLetter(strong[0] ?? '')) return 'a right-to-left username must begin with a right-to-left letter'
  const last = strong[strong.length - 1] ?? ''
  if (!isRtlLetter(last) && !EUROPEAN_DIGIT.test(last) && !ARABIC_DIGIT.test(last)) return 'a right-to-left username must end with a letter or a digit'
  if (chars.some((char) => /[\p{L}\p{N}]/u.test(char) && !RTL_RANGE.test(char) && !/[0-9]/.test(char))) return 'a right-to-left username cannot hold left-to-right letters'
  if (chars.some((char) => EUROPEAN_DIGIT.test(char)) && chars.some((char) => ARABIC_DIGIT.test(char))) return 'a username cannot mix European and Arabic-Indic digits'
  return undefined
}

// --- UTS #39 §5.1 resolved script sets, §5.2 "highly restrictive" ----------

// Every script the engine knows, by ISO 15924 code (Common, Inherited and
// Unknown are handled apart). A code an older engine lacks is skipped.
const SCRIPT_CODES = (
  'Adlm Aghb Ahom Arab Armi Armn Avst Bali Bamu Bass Batk Beng Berf Bhks Bopo Brah Brai Bugi Buhd Cakm Cans Cari Cham Cher Chrs Copt Cpmn ' +
  'Cprt Cyrl Deva Diak Dogr Dsrt Dupl Egyp Elba Elym Ethi Gara Geor Glag Gong Gonm Goth Gran Grek Gujr Gukh Guru Hang Hani Hano Hatr Hebr ' +
  'Hira Hluw Hmng Hmnp Hung Ital Java Kali Kana Kawi Khar Khmr Khoj Kits Knda Krai Kthi Lana Laoo Latn Lepc Limb Lina Linb Lisu Lyci Lydi ' +
  'Mahj Maka Mand Mani Marc Medf Mend Merc Mero Miao Mlym Modi Mong Mroo Mtei Mult Mymr Nagm Nand Narb Nbat Newa Nkoo Nshu Ogam Olck Onao ' +
  'Orkh Orya Osge Osma Ougr Palm Pauc Perm Phag Phli Phlp Phnx Plrd Prti Rjng Rohg Runr Samr Sarb Saur Sgnw Shaw Shrd Sidd Sidt Sind Sinh ' +
  'Sogd Sogo Sora Soyo Sund Sunu Sylo Syrc Tagb Takr Tale Talu Taml Tang Tavt Tayo Telu Tfng Tglg Thaa Thai Tibt Tirh Tnsa Todr Tols Toto ' +
  'Tutg Ugar Vaii Vith Wara Wcho Xpeo Xsux Yezi Yiii Zanb'
).split(' ')

function propertyRegExp (property: string): RegExp | undefined {
  try {
    return new RegExp(`\\p{${property}}`, 'u')
  } catch {
    return undefined
  }
}

const SCRIPT_EXTENSIONS: ReadonlyArray<[string, RegExp]> = SCRIPT_CODES.flatMap((code) => {
  const pattern = propertyRegExp(`Script_Extensions=${code}`)
  return pattern === undefined ? [] : [[code, pattern] as [string, RegExp]]
})
const COMMON_OR_INHERITED = /[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]/u

const SCRIPT_NAMES: Readonly<Record<string, string>> = {
  Latn: 'Latin', Cyrl: 'Cyrillic', Grek: 'Greek', Armn: 'Armenian', Geor: 'Georgian', Cher: 'Cherokee', Arab: 'Arabic', Hebr: 'Hebrew',
  Hani: 'Han', Hira: 'Hiragana', Kana: 'Katakana', Hang: 'Hangul', Bopo: 'Bopomofo', Deva: 'Devanagari', Thai: 'Thai', Copt: 'Coptic'
}

/** A character's Script_Extensions; undefined stands for Common and Inherited, which go with any script. */
function scriptsOf (char: string): Set<string> | undefined {
  if (COMMON_OR_INHERITED.test(char)) return undefined
  const scripts = new Set<string>()
  for (const [code, pattern] of SCRIPT_EXTENSIONS) if (pattern.test(char)) scripts.add(code)
  // An engine newer than the list: a script of its own, so it mixes with nothing.
  if (scripts.size === 0) scripts.add(`U+${codePoint(char).toString(16)}`)
  return scripts
}

/** UTS #39 §5.1 augmented script set: Han, Kana and Hangul also stand for the writing systems that combine them. */
function augment (scripts: Set<string>): Set<string> {
  const augmented = new Set(scripts)
  if (scripts.has('Hani')) for (const code of ['Hanb', 'Jpan', 'Kore']) augmented.add(code)
  if (scripts.has('Hira') || scripts.has('Kana')) augmented.add('Jpan')
  if (scripts.has('Hang')) augmented.add('Kore')
  if (scripts.has('Bopo')) augmented.add('Hanb')
  return augmented
}

// UTS #39 §5.2: the only mixes "highly restrictive" allows beyond a single script.
const ALLOWED_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latn', 'Hani', 'Hira', 'Kana']),
  new Set(['Latn', 'Hani', 'Bopo']),
  new Set(['Latn', 'Hani', 'Hang'])
]

function mixedScriptProblem (chars: readonly string[]): string | undefined {
  if (chars.every((char) => codePoint(char) < 0x80)) return undefined
  const sets = chars.map(scriptsOf).filter((scripts): scripts is Set<string> => scripts !== undefined)
  let resolved: Set<string> | undefined
  for (const scripts of sets) {
    const augmented = augment(scripts)
    resolved = resolved === undefined ? augmented : new Set([...resolved].filter((code) => augmented.has(code)))
  }
  if (resolved === undefined || resolved.size > 0) return undefined
  if (ALLOWED_MIXES.some((mix) => sets.every((scripts) => [...scripts].some((code) => mix.has(code))))) return undefined
  const named = [...new Set(sets.map((scripts) => [...scripts][0]!))].map((code) => SCRIPT_NAMES[code] ?? code)
  return `username mixes letters of different scripts (${named.join(', ')}), which lets it pass for another name; use one script`
}

// UTS #39 §5.4: marks stacked on one letter hide it, or make it another.
const NONSPACING_MARK = /\p{Mn}/u
const MAX_MARKS_IN_A_ROW = 4

function markProblem (chars: readonly string[]): string | undefined {
  if (MARK.test(chars[0]!)) return 'username cannot begin with a combining mark'
  const decomposed = [...chars.join('').normalize('NFD')]
  let run = 0
  for (const [index, char] of decomposed.entries()) {
    if (!NONSPACING_MARK.test(char)) { run = 0; continue }
    if (++run > MAX_MARKS_IN_A_ROW || decomposed.lastIndexOf(char, index - 1) >= index - run + 1) {
      return 'username stacks combining marks (the same twice, or more than four) on one letter'
    }
  }
  return undefined
}

/**
 * Why a name may not be registered, or undefined when it may. RFC 8265
 * checks the name as prepared (as it will be shown: so no ligature or
 * titlecase digraph that folding would hide) and as enforced (as it will be
 * compared).
 */
export function usernameProblem (value: string): string | undefined {
  const chars = [...canonicalUsername(value)]
  if (chars.length === 0) return 'username is empty'
  for (const form of [[...displayUsername(value)], chars]) {
    const refused = form.findIndex((_char, index) => !identifierClassAllows(form, index))
    if (refused !== -1) return `username may not contain ${hex(form[refused]!)}: RFC 8265 allows letters and digits, not spaces, symbols, controls, compatibility forms or invisible characters`
  }
  return markProblem(chars) ?? bidiProblem(chars) ?? mixedScriptProblem(chars)
}
