// fast-check generators shared by the property tests of both services.
import fc from 'fast-check'

/** Printable ASCII and tabs: what an HTTP client can put in a header value. */
export const headerValue = (maxLength = 200): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'\t !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~'), maxLength })

/** One character changed, inserted or removed somewhere in `token`. */
export function mutation (token: string): fc.Arbitrary<string> {
  const alphabet = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ')
  return fc.tuple(fc.nat({ max: token.length - 1 }), alphabet, fc.constantFrom('replace', 'insert', 'delete')).map(([at, char, how]) =>
    how === 'replace' ? token.slice(0, at) + char + token.slice(at + 1)
      : how === 'insert' ? token.slice(0, at) + char + token.slice(at)
        : token.slice(0, at) + token.slice(at + 1))
}

/** The seed to replay (`FC_SEED=<seed>`) and the number of runs, as fast-check options. */
export function fuzzOptions (numRuns: number): { numRuns: number, seed?: number } {
  const seed = process.env.FC_SEED
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed) }
}
