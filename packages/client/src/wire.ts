import { BatonClientError } from './errors.js'
import type { TokenAnswer } from './delivery.js'

/** RFC 6749 §2.3.1: HTTP Basic client credentials are form-urlencoded before base64. */
export function formEncode (value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2)
}

function retryAfterSeconds (response: Response): number | undefined {
  const header = response.headers.get('retry-after')
  if (header === null || !/^\d+$/.test(header)) return undefined
  return Number(header)
}

/**
 * The JSON body of a 2xx answer (`{}` for an empty one); anything else
 * rejects with the OAuth error it carries, or `http_error`.
 */
export async function readAnswer (response: Response): Promise<unknown> {
  const text = await response.text().catch(() => '')
  let body: unknown
  try {
    body = text === '' ? {} : JSON.parse(text)
  } catch {
    body = undefined
  }
  if (response.ok) {
    if (typeof body !== 'object' || body === null) throw new BatonClientError('invalid_response', `the answer (${response.status}) is not JSON`, { status: response.status })
    return body
  }
  const fields = (typeof body === 'object' && body !== null ? body : {}) as { error?: unknown, error_description?: unknown }
  const code = typeof fields.error === 'string' && fields.error !== '' ? fields.error : 'http_error'
  const description = typeof fields.error_description === 'string' ? fields.error_description : `the answer was ${response.status}`
  const retryAfter = retryAfterSeconds(response)
  throw new BatonClientError(code, description, { status: response.status, ...(retryAfter === undefined ? {} : { retryAfter }) })
}

/** Checks that a token endpoint answer has what the client relies on. */
export function readTokenAnswer (body: unknown): TokenAnswer {
  const answer = body as Partial<TokenAnswer>
  if (typeof answer.access_token !== 'string' || answer.access_token === '' || typeof answer.expires_in !== 'number' || !(answer.expires_in > 0)) {
    throw new BatonClientError('invalid_response', 'the token answer has no access_token or expires_in')
  }
  return answer as TokenAnswer
}

/**
 * The `sid` claim of a Baton access token (an RFC 9068 JWT), read without
 * verifying it: the client only uses it to recognise its own session in the
 * sessions list. Undefined for a token that is not such a JWT.
 */
export function accessTokenSessionId (token: string): string | undefined {
  const payload = token.split('.')[1]
  if (payload === undefined) return undefined
  try {
    const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'))
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)))) as { sid?: unknown }
    return typeof claims.sid === 'string' ? claims.sid : undefined
  } catch {
    return undefined
  }
}
