import type { TokenStore } from './token-store.js'

/**
 * How the refresh token travels: `'body'` (token mode) in the token
 * endpoint's JSON answer, kept by the client's `TokenStore`; `'cookie'` in an
 * `HttpOnly` cookie the browser keeps and the client never sees.
 */
export type RefreshTokenDelivery = 'body' | 'cookie'

/**
 * The header every cookie-mode request to the auth-service carries. A
 * cross-site form cannot set a custom header, and a cross-origin script can
 * only after a CORS preflight the auth-service refuses: together with the
 * `Origin` allow-list it is the CSRF defence of cookie mode.
 */
export const CLIENT_HEADER = 'x-baton-client'

/** A successful token endpoint answer (RFC 6749 §5.1). */
export interface TokenAnswer {
  access_token: string
  token_type: string
  expires_in: number
  refresh_token?: string
  scope?: string
  device_token?: string
}

/** Where the refresh token lives, and so what the requests that need it carry. */
export interface RefreshTokenCarrier {
  readonly delivery: RefreshTokenDelivery
  /** What every request to the token and revocation endpoints adds. */
  readonly requestInit: { credentials: RequestCredentials, headers: Record<string, string> }
  /** The refresh grant's parameters; undefined when there is nothing to refresh with. */
  refreshParameters: () => Promise<Record<string, string> | undefined>
  /** The parameters of the revocation that ends the session; undefined when there is none to end. */
  revocationParameters: () => Promise<Record<string, string> | undefined>
  /** What the password grant adds (the device token of an earlier login). */
  loginParameters: () => Promise<Record<string, string>>
  /** Keeps what a token answer brought. */
  keep: (answer: TokenAnswer) => Promise<void>
  /** What another tab needs to go on with the session. */
  handOff: () => Promise<string | undefined>
  /** Takes over what another tab handed off. */
  takeOver: (refreshToken: string | undefined) => Promise<void>
  /** The session ended: forgets its refresh token (the device token stays). */
  forget: () => Promise<void>
}

/** Token mode: the refresh token comes in the answer's body and stays in `store`. */
export function bodyDelivery (store: TokenStore): RefreshTokenCarrier {
  const refreshToken = async (): Promise<string | undefined> => await store.get('refresh_token')
  return {
    delivery: 'body',
    // Nothing the auth-service might set as a cookie is sent back: in token mode no request depends on one.
    requestInit: { credentials: 'omit', headers: {} },
    refreshParameters: async () => {
      const token = await refreshToken()
      return token === undefined ? undefined : { refresh_token: token }
    },
    revocationParameters: async () => {
      const token = await refreshToken()
      return token === undefined ? undefined : { token, token_type_hint: 'refresh_token' }
    },
    loginParameters: async (): Promise<Record<string, string>> => {
      const deviceToken = await store.get('device_token')
      return deviceToken === undefined ? {} : { device_token: deviceToken }
    },
    keep: async (answer) => {
      if (answer.refresh_token !== undefined) await store.set('refresh_token', answer.refresh_token)
      if (answer.device_token !== undefined) await store.set('device_token', answer.device_token)
    },
    handOff: refreshToken,
    takeOver: async (token) => {
      if (token !== undefined && token !== await refreshToken()) await store.set('refresh_token', token)
    },
    forget: async () => { await store.delete('refresh_token') }
  }
}

/**
 * Cookie mode: the auth-service sets the refresh token as an `HttpOnly`
 * cookie and reads it back from there; the client only makes sure the
 * browser sends it (`credentials: 'include'`) with the CSRF header, and never
 * keeps or passes on a refresh token, even one an answer carries.
 */
export function cookieDelivery (): RefreshTokenCarrier {
  return {
    delivery: 'cookie',
    requestInit: { credentials: 'include', headers: { [CLIENT_HEADER]: '1' } },
    // The client cannot know whether the browser holds the cookie: asking is the only way to find out.
    refreshParameters: async () => ({}),
    revocationParameters: async () => ({ token_type_hint: 'refresh_token' }),
    loginParameters: async () => ({}),
    keep: async () => {},
    handOff: async () => undefined,
    takeOver: async () => {},
    forget: async () => {}
  }
}
