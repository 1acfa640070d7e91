/**
 * What a token store keeps: the session's `refresh_token`, and the
 * `device_token` of the last login, which gives this device a failed-login
 * budget of its own at the auth-service and outlives logouts.
 */
export type StoredTokenName = 'refresh_token' | 'device_token'

/**
 * Where the client keeps what must outlive its memory in token mode. The
 * access token is never given to a store: it lives in memory only.
 *
 * A browser app keeps the default (the refresh token then lives as long as
 * its tabs, handed from tab to tab); a Node CLI may keep it in a file
 * (`FileTokenStore` from `@baton/client/node`); a mobile app in the platform
 * keystore.
 *
 * @example
 * const store: TokenStore = {
 *   get: async (name) => await keychain.read(`baton.${name}`),
 *   set: async (name, value) => { await keychain.write(`baton.${name}`, value) },
 *   delete: async (name) => { await keychain.remove(`baton.${name}`) }
 * }
 */
export interface TokenStore {
  get: (name: StoredTokenName) => Promise<string | undefined> | string | undefined
  set: (name: StoredTokenName, value: string) => Promise<void> | void
  delete: (name: StoredTokenName) => Promise<void> | void
}

/** Keeps tokens in this object only: gone with the page or the process. The default. */
export class MemoryTokenStore implements TokenStore {
  readonly #values = new Map<StoredTokenName, string>()

  get (name: StoredTokenName): string | undefined {
    return this.#values.get(name)
  }

  set (name: StoredTokenName, value: string): void {
    this.#values.set(name, value)
  }

  delete (name: StoredTokenName): void {
    this.#values.delete(name)
  }
}
