import { VerifierError } from './errors.js'

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; RFC 9449 §7.1 gives DPoP the same syntax.
const CREDENTIALS = /^ +([A-Za-z0-9\-._~+/]+=*)$/

/**
 * The token of an `Authorization: Bearer` header, with RFC 6750's split:
 * no header or another scheme is a bare 401 challenge (`missing`), a Bearer
 * header that does not carry exactly one b64token is a 400 invalid_request
 * (`malformed`). Throws a {@link VerifierError} for both.
 *
 * @example extractBearerToken('Bearer eyJhbGciOi...') // 'eyJhbGciOi...'
 */
export function extractBearerToken (header: string | string[] | undefined): string {
  return extractCredentials(header, false).token
}

/** The scheme and token of an `Authorization` header. */
export interface Credentials {
  scheme: 'Bearer' | 'DPoP'
  token: string
}

/**
 * {@link extractBearerToken}, also taking `DPoP <token>` (RFC 9449 §7.1,
 * the same token68 syntax) when `dpop` is true; then its refusals are
 * answered with a DPoP challenge.
 */
export function extractCredentials (header: string | string[] | undefined, dpop: boolean): Credentials {
  if (header === undefined || header === '') {
    throw new VerifierError('BATON_TOKEN_MISSING', 'missing')
  }
  if (typeof header !== 'string') {
    throw new VerifierError('BATON_TOKEN_MALFORMED', 'malformed', 'the request has more than one Authorization header')
  }
  const schemeEnd = header.search(/[ \t]/)
  const scheme = (schemeEnd === -1 ? header : header.slice(0, schemeEnd)).toLowerCase()
  if (scheme !== 'bearer' && !(dpop && scheme === 'dpop')) {
    throw new VerifierError('BATON_TOKEN_MISSING', 'missing')
  }
  const match = CREDENTIALS.exec(header.slice(scheme.length))
  if (match === null) {
    return scheme === 'bearer'
      ? malformed('the Authorization header must be Bearer followed by one token', 'Bearer')
      : malformed('the Authorization header must be DPoP followed by one token', 'DPoP')
  }
  return { scheme: scheme === 'bearer' ? 'Bearer' : 'DPoP', token: match[1]! }
}

function malformed (description: string, scheme: 'Bearer' | 'DPoP'): never {
  throw new VerifierError('BATON_TOKEN_MALFORMED', 'malformed', description, { scheme })
}
