import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Result } from 'ioredis'
import type { RedisClient } from './client.js'

/**
 * Every Lua script the auth-service runs, by the command name it is
 * registered under: its file in lua/ and how many keys it takes (undefined:
 * the caller passes the count first). The typings below say what each takes
 * and answers; each file's header says what it does.
 */
const SCRIPTS = {
  // Sessions. The ones that walk a user's sessions take any number of keys: they declare the sessions the script may touch.
  batonCreateSession: { file: 'create-session.lua', keys: undefined },
  batonRotateRefresh: { file: 'rotate-refresh.lua', keys: 2 },
  batonRevokeSession: { file: 'revoke-session.lua', keys: 2 },
  batonRevokeUserSessions: { file: 'revoke-user-sessions.lua', keys: undefined },
  batonListSessions: { file: 'list-sessions.lua', keys: undefined },
  batonTokenStatus: { file: 'token-status.lua', keys: 2 },
  batonPublishRevocation: { file: 'publish-revocation.lua', keys: 1 },
  // Accounts.
  batonChangePassword: { file: 'change-password.lua', keys: 1 },
  batonClaimUsername: { file: 'claim-username.lua', keys: 1 },
  batonSetUserLock: { file: 'set-user-lock.lua', keys: 1 },
  // Rate limits.
  batonRateLimit: { file: 'rate-limit.lua', keys: undefined },
  batonAccountLimit: { file: 'account-limit.lua', keys: 3 },
  // The generated signing keyring.
  batonRotateSigningKey: { file: 'rotate-signing-key.lua', keys: 1 },
  batonRevokeSigningKey: { file: 'revoke-signing-key.lua', keys: 1 },
  batonPruneSigningKeys: { file: 'prune-signing-keys.lua', keys: 1 }
} as const

type Arg = string | number

/**
 * init: create the keyring if there is none. operator: add a pending key
 * unless one is pending. scheduled: the same, only when rotation is due.
 */
export type RotationMode = 'init' | 'operator' | 'scheduled'
export type RotationStatus = 'created' | 'added' | 'exists' | 'pending' | 'not-due' | 'full'
/** replaced: the key was signing and a new one signs from now; removed: it was pending or retiring. */
export type KeyRevocationStatus = 'replaced' | 'removed' | 'not-found'

declare module 'ioredis' {
  interface RedisCommander<Context> {
    batonCreateSession: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<string[], Context>
    batonRotateRefresh: (session: string, index: string, ...args: Arg[]) => Result<string[], Context>
    batonRevokeSession: (session: string, index: string, sid: string, clientId: string) => Result<number, Context>
    batonRevokeUserSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[]], Context>
    batonListSessions: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[string, string[] | string[][]], Context>
    batonTokenStatus: (session: string, revokedToken: string, now: Arg, hasSession: '0' | '1') => Result<number, Context>
    batonPublishRevocation: (stream: string, keepMs: Arg, ...fieldsAndValues: Arg[]) => Result<string, Context>
    batonChangePassword: (user: string, expectedHash: string, nextHash: string, now: Arg, deadline: Arg) => Result<number, Context>
    batonClaimUsername: (username: string, id: string, deadline: Arg) => Result<number, Context>
    batonSetUserLock: (user: string, action: 'lock' | 'unlock', now: Arg, reason: string) => Result<number, Context>
    batonRateLimit: (numberOfKeys: number, ...keysThenArgs: Arg[]) => Result<[number, number, number], Context>
    batonAccountLimit: (unknownFailures: string, clientFailures: string, knownAddress: string, knownDevice: '0' | '1', limit: Arg, windowMs: Arg, deadline: Arg) => Result<[number, number, number], Context>
    batonRotateSigningKey: (keyring: string, now: number, kid: string, alg: string, pem: string,
      publishAheadMs: number, retireAfterMs: number, mode: RotationMode, intervalMs: number, maxKeys: number) => Result<[RotationStatus, string | null], Context>
    batonRevokeSigningKey: (keyring: string, now: number, kid: string, replacementKid: string, alg: string, pem: string) => Result<[KeyRevocationStatus, string | null], Context>
    batonPruneSigningKeys: (keyring: string, now: number, retireAfterMs: number) => Result<[number, string | null], Context>
  }
}

const LUA_DIR = new URL('../../lua/', import.meta.url)
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

/** Registers every script on a client, once; ioredis sends EVALSHA and falls back to EVAL after a restart. */
export function defineScripts (client: RedisClient): void {
  for (const [name, { file, keys }] of Object.entries(SCRIPTS)) {
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
