import { VerifierError } from './errors.js'

// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
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
  if (header === undefined || header === '') {
    throw new VerifierError('BATON_TOKEN_MISSING', 'missing')
  }
  if (typeof header !== 'string') {
    throw new VerifierError('BATON_TOKEN_MALFORMED', 'malformed', 'the request has more than one Authorization header')
  }
  const schemeEnd = header.search(/[ \t]/)
  const scheme = schemeEnd === -1 ? header : header.slice(0, schemeEnd)
  if (scheme.toLowerCase() !== 'bearer') {
    throw new VerifierError('BATON_TOKEN_MISSING', 'missing')
  }
  const match = CREDENTIALS.exec(header.slice(scheme.length))
  if (match === null) {
    throw new VerifierError('BATON_TOKEN_MALFORMED', 'malformed', 'the Authorization header must be Bearer followed by one token')
  }
  return match[1]!
}
