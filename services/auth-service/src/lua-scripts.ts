import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { RedisClient } from '@baton/service-kit'

const LUA_DIR = new URL('../lua/', import.meta.url)
// Helpers every script may call (Redis scripts cannot import one another).
const PRELUDE = readFileSync(new URL('lib/prelude.lua', LUA_DIR), 'utf8')

// Script name (the file's, without .lua) by SHA-1: what EVALSHA is labelled with in the latency histogram.
const names = new Map<string, string>()

/** What Redis runs for a file of lua/: the prelude, then the file. */
function source (file: string): string {
  return `${PRELUDE}\n${readFileSync(new URL(file, LUA_DIR), 'utf8')}`
}

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex')

/** The SHA-1 that EVALSHA names a file of lua/ by, once defined. */
export function scriptSha (file: string): string {
  return sha1(source(file))
}

/** Defines each script of `scripts` (command name → file in lua/, number of keys) on a client, once. */
export function defineLuaScripts (client: RedisClient, scripts: Record<string, { file: string, keys: number | undefined }>): void {
  for (const [name, { file, keys }] of Object.entries(scripts)) {
    if (name in client) continue
    const lua = source(file)
    names.set(sha1(lua), file.replace(/\.lua$/, ''))
    client.defineCommand(name, { numberOfKeys: keys, lua })
  }
}

/** The name of a script defined here, by its SHA-1. */
export function scriptName (sha: string): string | undefined {
  return names.get(sha)
}
