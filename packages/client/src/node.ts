import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateDpopKeyPair, loadOnce, type DpopKeyStore } from './dpop.js'
import type { StoredTokenName, TokenStore } from './token-store.js'

export * from './index.js'

/** What the file holds: the tokens by name, and the DPoP private keys (JWK) by issuer and client. */
type FileContents = Partial<Record<StoredTokenName, string>> & { dpop_keys?: Record<string, JsonWebKey> }

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const

/**
 * Keeps the refresh token (and the device token) in a JSON file readable by
 * its owner only (mode 0600): a CLI's session survives between runs. One
 * process at a time: two processes refreshing through one file would spend
 * each other's tokens.
 *
 * With `dpop: true` it keeps the DPoP key too, in the same file: a refresh
 * token bound to a key is useless to the next run without that key, and a
 * file can only hold a key that can be read out. So the private key is
 * written (as a JWK) beside the refresh token it goes with, and read back
 * as a non-extractable key. DPoP then still protects the tokens wherever
 * they travel (logs, proxies, a server's memory); whoever can read this
 * file has both, as they had the refresh token before. A process that needs
 * no session across runs is safer with the default memory store.
 *
 * @example
 * import { createClient, FileTokenStore } from '@baton/client/node'
 * const baton = createClient({ issuer, dpop: true, tokenStore: new FileTokenStore(`${homedir()}/.config/my-cli/session.json`) })
 */
export class FileTokenStore implements TokenStore, DpopKeyStore {
  readonly #path: string
  readonly #keyPairs = new Map<string, Promise<CryptoKeyPair>>()

  constructor (path: string) {
    this.#path = path
  }

  async #read (): Promise<FileContents> {
    try {
      const parsed = JSON.parse(await readFile(this.#path, 'utf8')) as unknown
      return typeof parsed === 'object' && parsed !== null ? parsed as FileContents : {}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw error
    }
  }

  async #write (values: FileContents): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 })
    // A reader never sees half a file: write aside, then rename over.
    const temporary = `${this.#path}.${process.pid}.tmp`
    await writeFile(temporary, JSON.stringify(values), { mode: 0o600 })
    await chmod(temporary, 0o600)
    await rename(temporary, this.#path)
  }

  async get (name: StoredTokenName): Promise<string | undefined> {
    const value = (await this.#read())[name]
    return typeof value === 'string' ? value : undefined
  }

  async set (name: StoredTokenName, value: string): Promise<void> {
    await this.#write({ ...await this.#read(), [name]: value })
  }

  async delete (name: StoredTokenName): Promise<void> {
    const values = await this.#read()
    if (!(name in values)) return
    delete values[name]
    await this.#write(values)
  }

  async #loadKeyPair (name: string): Promise<CryptoKeyPair> {
    const contents = await this.#read()
    let jwk = contents.dpop_keys?.[name]
    if (jwk === undefined) {
      jwk = await crypto.subtle.exportKey('jwk', (await generateDpopKeyPair({ extractable: true })).privateKey)
      await this.#write({ ...await this.#read(), dpop_keys: { ...contents.dpop_keys, [name]: jwk } })
    }
    const { kty, crv, x, y } = jwk
    return {
      // Read back non-extractable: from here on this process can only sign with it.
      privateKey: await crypto.subtle.importKey('jwk', jwk, P256, false, ['sign']),
      publicKey: await crypto.subtle.importKey('jwk', { kty, crv, x, y }, P256, true, ['verify'])
    }
  }

  /** The DPoP key pair kept under `name`, made and written to the file on first use. */
  async dpopKeyPair (name: string): Promise<CryptoKeyPair> {
    return await loadOnce(this.#keyPairs, name, async () => await this.#loadKeyPair(name))
  }
}
