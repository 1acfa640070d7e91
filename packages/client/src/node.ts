import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { StoredTokenName, TokenStore } from './token-store.js'

export * from './index.js'

/**
 * Keeps the refresh token (and the device token) in a JSON file readable by
 * its owner only (mode 0600): a CLI's session survives between runs. One
 * process at a time: two processes refreshing through one file would spend
 * each other's tokens.
 *
 * @example
 * import { createClient, FileTokenStore } from '@baton/client/node'
 * const baton = createClient({ issuer, tokenStore: new FileTokenStore(`${homedir()}/.config/my-cli/session.json`) })
 */
export class FileTokenStore implements TokenStore {
  readonly #path: string

  constructor (path: string) {
    this.#path = path
  }

  async #read (): Promise<Partial<Record<StoredTokenName, string>>> {
    try {
      const parsed = JSON.parse(await readFile(this.#path, 'utf8')) as unknown
      return typeof parsed === 'object' && parsed !== null ? parsed as Partial<Record<StoredTokenName, string>> : {}
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw error
    }
  }

  async #write (values: Partial<Record<StoredTokenName, string>>): Promise<void> {
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
}
