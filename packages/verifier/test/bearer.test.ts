import t from 'tap'
import { BatonError } from '@baton/tokens'
import { extractBearerToken } from '../src/index.js'

function codeOf (header: string | string[] | undefined): string {
  try {
    return `token:${extractBearerToken(header)}`
  } catch (error) {
    if (error instanceof BatonError) return error.code
    throw error
  }
}

t.test('returns the b64token of a Bearer header', async (t) => {
  t.equal(extractBearerToken('Bearer abc.def.ghi'), 'abc.def.ghi')
  t.equal(extractBearerToken('bearer abc'), 'abc', 'the scheme is case-insensitive (RFC 7235)')
  t.equal(extractBearerToken('BEARER abc'), 'abc')
  t.equal(extractBearerToken('Bearer  abc'), 'abc', 'RFC 6750 allows 1*SP')
  t.equal(extractBearerToken('Bearer a-b_c.d~e+f/g=='), 'a-b_c.d~e+f/g==', 'every b64token character')
})

t.test('no credentials, or another scheme, is TOKEN_MISSING (bare 401 challenge)', async (t) => {
  for (const header of [undefined, '', 'Basic dXNlcjpwYXNz', 'Token abc', 'Bearerabc', 'DPoP abc', 'Digest username="x"']) {
    t.equal(codeOf(header), 'BATON_TOKEN_MISSING', JSON.stringify(header))
  }
})

t.test('a Bearer header without exactly one b64token is TOKEN_MALFORMED (400)', async (t) => {
  for (const header of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer\tabc', 'Bearer abc ', 'Bearer a=b', 'Bearer a,b', 'Bearer "abc"', 'Bearer ä', 'Bearer a\u0000b', 'Bearer ==']) {
    t.equal(codeOf(header), 'BATON_TOKEN_MALFORMED', JSON.stringify(header))
  }
  t.equal(codeOf(['Bearer a', 'Bearer b']), 'BATON_TOKEN_MALFORMED', 'two headers')
})
