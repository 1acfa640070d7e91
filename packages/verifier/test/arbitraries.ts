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

/** The claim names a Baton access token may carry. */
export const CLAIM_NAMES = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope', 'sid', 'username', 'cnf'] as const

export interface Expectations {
  issuer: string
  audience: string
  skewS: number
}

/** What RFC 9068 and Baton demand of a claim set sent as a Bearer token, written out independently of the verifier. */
export function acceptableClaims (payload: Record<string, unknown>, nowS: number, { issuer, audience, skewS }: Expectations): boolean {
  const int = (value: unknown): value is number => Number.isSafeInteger(value)
  const text = (value: unknown): value is string => typeof value === 'string'
  // RFC 7519 §4.1.3: one string, or an array of strings among which is ours.
  const audOk = payload.aud === audience || (Array.isArray(payload.aud) && payload.aud.every(text) && payload.aud.includes(audience))
  return payload.iss === issuer && audOk &&
    text(payload.sub) && payload.sub !== '' && text(payload.jti) && payload.jti !== '' &&
    text(payload.client_id) && text(payload.scope) &&
    int(payload.exp) && nowS <= payload.exp + skewS && int(payload.iat) && payload.iat <= nowS + skewS &&
    (payload.nbf === undefined || (int(payload.nbf) && nowS >= payload.nbf - skewS)) &&
    (payload.sid === undefined || text(payload.sid)) && (payload.username === undefined || text(payload.username)) &&
    // RFC 9449 §7.2: a token bound to a key (cnf) is no bearer token.
    payload.cnf === undefined
}

/**
 * Edits to a genuine claim set: one or two claims dropped or replaced, mostly
 * by a near miss (a time close to now, a float, the right string in an array
 * or next to another audience). `undefined` means "drop it".
 */
export function claimEdits (nowS: number, { issuer, audience }: Pick<Expectations, 'issuer' | 'audience'>): fc.Arbitrary<Record<string, unknown>> {
  const near = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: nowS - 3600, max: nowS + 3600 }) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<unknown>(issuer, audience, [audience], [audience, 'another-api'], ['another-api'], [], [audience, 7], [issuer],
        `${issuer}/`, audience.toUpperCase(), '', null, true, nowS + 0.5, nowS - 0.5, -1, 2 ** 53, String(nowS + 900), {})
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
  )
  return fc.dictionary(fc.constantFrom(...CLAIM_NAMES), fc.option(near, { nil: undefined, freq: 6 }), { minKeys: 1, maxKeys: 2 })
}

/** `base` with `edit` applied: a key whose value is undefined is removed. */
export function applyEdit (base: Record<string, unknown>, edit: Record<string, unknown>): Record<string, unknown> {
  const payload = { ...base }
  for (const [name, value] of Object.entries(edit)) {
    if (value === undefined) Reflect.deleteProperty(payload, name)
    else payload[name] = value
  }
  return payload
}
