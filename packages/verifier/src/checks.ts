// The checks Baton makes beyond what a JOSE library makes, as pure functions
// of the token text and the claims.
import { ACCESS_TOKEN_TYP, type AccessTokenClaims } from '@baton/tokens'
import { refuseToken } from './errors.js'

// Baton writes exactly these. Anything else is refused rather than ignored:
// `jku`, `jwk`, `x5u` and `x5c` would name a key (or a place to fetch one)
// chosen by whoever made the token, and `crit` demands understanding.
const HEADER_PARAMETERS = new Set(['alg', 'typ', 'kid'])
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** The parts of a JWS header Baton reads, after {@link checkTokenText}. */
export interface AccessTokenHeader {
  alg: string
  kid: string
}

/**
 * Whether some object in a JSON text names a member twice. Parsers
 * disagree on which one wins (JSON.parse keeps the last), so a token that
 * does it may mean different things to different readers. Only strings and
 * brackets need tracking; a text that is not JSON is refused elsewhere.
 */
export function hasDuplicateMembers (json: string): boolean {
  const objects: Array<Set<string> | undefined> = []
  let expectName = false
  for (let i = 0; i < json.length; i++) {
    const char = json[i]
    if (char === '"') {
      let end = i + 1
      while (end < json.length && json[end] !== '"') end += json[end] === '\\' ? 2 : 1
      const members = objects[objects.length - 1]
      if (expectName && members !== undefined) {
        let name: string
        try {
          // Compared unescaped: "s\u0075b" is "sub".
          name = JSON.parse(json.slice(i, end + 1)) as string
        } catch {
          return false
        }
        if (members.has(name)) return true
        members.add(name)
      }
      expectName = false
      i = end
    } else if (char === '{') {
      objects.push(new Set())
      expectName = true
    } else if (char === '[') {
      objects.push(undefined)
    } else if (char === '}' || char === ']') {
      objects.pop()
    } else if (char === ',') {
      expectName = objects[objects.length - 1] !== undefined
    }
  }
  return false
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function typAccepted (typ: unknown): boolean {
  // RFC 9068 §4 with RFC 8725 §3.11: media types compare case-insensitively, "application/" may be left out.
  return typeof typ === 'string' && typ.toLowerCase().replace(/^application\//, '') === ACCESS_TOKEN_TYP
}

/**
 * What a JOSE library's lenient decoding leaves to us, before any key is
 * looked up: three segments, each the one canonical base64url spelling of
 * its bytes (no second spelling of the same signature passes as another
 * token), no JSON text naming a member twice, and a header that carries only
 * Baton's parameters, an allowed `alg`, `typ` at+jwt and a plausible `kid`.
 */
export function checkTokenText (token: string, algorithms: ReadonlySet<string>): AccessTokenHeader {
  if (!JWS_COMPACT.test(token)) throw refuseToken('malformed', 'the access token is not a signed JWT')
  const segments = token.split('.')
  for (const segment of segments) {
    // A length no base64url text has is no spelling of anything; an odd spelling of some bytes is.
    if (segment.length % 4 === 1) throw refuseToken('malformed', 'the access token is not a signed JWT')
    if (Buffer.from(segment, 'base64url').toString('base64url') !== segment) throw refuseToken('encoding')
  }
  const headerText = Buffer.from(segments[0]!, 'base64url').toString('utf8')
  const payloadText = Buffer.from(segments[1]!, 'base64url').toString('utf8')
  if (hasDuplicateMembers(headerText) || hasDuplicateMembers(payloadText)) throw refuseToken('duplicate')
  let header: unknown
  try {
    header = JSON.parse(headerText)
  } catch {
    throw refuseToken('malformed')
  }
  if (!isRecord(header)) throw refuseToken('malformed')
  for (const name of Object.keys(header)) {
    if (!HEADER_PARAMETERS.has(name)) {
      throw refuseToken('header', `the access token header parameter "${name.slice(0, 32).replace(/[^\x20-\x7e]|"|\\/g, '?')}" is not accepted`)
    }
  }
  const { alg, typ, kid } = header
  if (typeof alg !== 'string' || !algorithms.has(alg)) throw refuseToken('algorithm')
  if (!typAccepted(typ)) throw refuseToken('typ')
  if (typeof kid !== 'string' || kid === '' || kid.length > 256) throw refuseToken('unknown_kid')
  return { alg, kid }
}

const isString = (value: unknown): value is string => typeof value === 'string'

/** RFC 7519 §4.1.3: one string, or an array of strings that contains ours; never an empty array or anything else in it. */
export function audienceAccepted (aud: unknown, audience: string): boolean {
  if (typeof aud === 'string') return aud === audience
  return Array.isArray(aud) && aud.length > 0 && aud.every(isString) && aud.includes(audience)
}

/**
 * The claims Baton relies on, with their types, checked once when a token is
 * first verified; the lifetime is checked on every use ({@link checkLifetime}).
 */
export function checkClaims (payload: unknown, issuer: string, audience: string): AccessTokenClaims {
  if (!isRecord(payload)) throw refuseToken('malformed')
  const claims = payload
  const typesOk =
    isString(claims.sub) && claims.sub !== '' && isString(claims.jti) && claims.jti !== '' &&
    isString(claims.client_id) && isString(claims.scope) &&
    Number.isSafeInteger(claims.exp) && Number.isSafeInteger(claims.iat) &&
    (claims.nbf === undefined || Number.isSafeInteger(claims.nbf)) &&
    (claims.sid === undefined || isString(claims.sid)) &&
    (claims.username === undefined || isString(claims.username)) &&
    (claims.cnf === undefined || (isRecord(claims.cnf) && isString(claims.cnf.jkt) && claims.cnf.jkt !== ''))
  if (!typesOk || claims.iss !== issuer || !audienceAccepted(claims.aud, audience)) throw refuseToken('claims')
  return claims as AccessTokenClaims
}

/** `exp`, `nbf` and `iat` against the verifier's clock, with the leeway; throws the refusal. */
export function checkLifetime (claims: AccessTokenClaims & { nbf?: number }, nowMs: number, skewMs: number): void {
  if (nowMs > claims.exp * 1000 + skewMs) throw refuseToken('expired')
  if (claims.nbf !== undefined && nowMs < claims.nbf * 1000 - skewMs) throw refuseToken('not_yet_valid')
  if (claims.iat * 1000 > nowMs + skewMs) throw refuseToken('issued_in_future')
}
