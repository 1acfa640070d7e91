import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { RedisClient } from '@baton/service-kit'

const LUA_DIR = new URL('../lua/', import.meta.url)

// Script name (the file's, without .lua) by SHA-1: what EVALSHA is labelled with in the latency histogram.
const names = new Map<string, string>()

/** Defines each script of `scripts` (command name → file in lua/, number of keys) on a client, once. */
export function defineLuaScripts (client: RedisClient, scripts: Record<string, { file: string, keys: number | undefined }>): void {
  for (const [name, { file, keys }] of Object.entries(scripts)) {
    if (name in client) continue
    const lua = readFileSync(new URL(file, LUA_DIR), 'utf8')
    names.set(createHash('sha1').update(lua).digest('hex'), file.replace(/\.lua$/, ''))
    client.defineCommand(name, { numberOfKeys: keys, lua })
  }
}

/** The name of a script defined here, by its SHA-1. */
export function scriptName (sha: string): string | undefined {
  return names.get(sha)
}
