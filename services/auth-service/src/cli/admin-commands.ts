import { rotationPolicy, sessionLifetimes, sessionReplication, type Config } from '../config.js'
import type { RedisClient } from '../redis/client.js'
import type { RedisKeys } from '../redis/keys.js'
import { defineScripts } from '../redis/scripts.js'
import type { Logger } from '../core/logger.js'
import { auditOperator } from '../observability/audit.js'
import { RedisRevocationPublisher } from '../core/revocation-publisher.js'
import { SessionStore } from '../core/sessions/session-store.js'
import { RefreshTokenCodec } from '../core/sessions/refresh-token-codec.js'
import { RedisUserStore, type UserRecord } from '../core/accounts/user-store.js'
import { parseSuppliedKeys } from '../core/keys/signing-key.js'
import { describeKey, keyStates, parseKeyring } from '../core/keys/rotation-policy.js'
import { revokeSigningKey, rotateSigningKey } from '../core/keys/keyring-store.js'

/** What a command prints: one JSON line on stdout. */
export type CommandOutput = Record<string, unknown>

/** A command that could not do what was asked; `exitCode` 1 (failed) or 2 (refused). */
export class CommandError extends Error {
  readonly exitCode: 1 | 2
  constructor (message: string, exitCode: 1 | 2 = 1) {
    super(message)
    this.exitCode = exitCode
  }
}

export interface CommandContext {
  config: Config
  redis: RedisClient
  keys: RedisKeys
  /** Audit lines go here (stderr). */
  log: Logger
  /** Who runs the command, for the audit log. */
  operator: string
  now: () => number
}

export interface CommandArgs {
  positionals: string[]
  user?: string | undefined
  reason?: string | undefined
  feedOnly?: boolean | undefined
}

const SUPPLIED_KEYS = 'the signing keys come from SIGNING_KEY / SIGNING_KEY_FILE, not Redis'

function sessionStore (context: CommandContext, publisher: RedisRevocationPublisher): SessionStore {
  const { config } = context
  const noSecret = (): never => { throw new Error('refresh tokens are neither issued nor read by operator commands') }
  return new SessionStore(context.redis, context.keys, new RefreshTokenCodec(noSecret), sessionLifetimes(config), context.now, {
    replication: sessionReplication(config),
    feed: publisher
  })
}

/**
 * The revocation feed's publisher, made to try once: a command has no
 * background to retry in. `published()` says whether every event got out.
 */
function feedPublisher (context: CommandContext): { publisher: RedisRevocationPublisher, published: () => boolean } {
  let failed = false
  const publisher = new RedisRevocationPublisher(context.redis, {
    stream: context.keys.revocations,
    accessTokenTtlSeconds: context.config.ACCESS_TOKEN_TTL,
    clockSkewSeconds: context.config.CLOCK_SKEW,
    now: context.now,
    retryDelaysMs: []
  }, context.log, (outcome) => { if (outcome === 'failed') failed = true })
  return { publisher, published: () => !failed }
}

async function findUser (context: CommandContext, username: string): Promise<UserRecord> {
  const user = await new RedisUserStore(context.redis, context.keys, context.now).findByUsername(username)
  if (user === undefined) throw new CommandError(`no user named ${JSON.stringify(username)}`)
  return user
}

/** Ends every session of `user`, publishes them on the feed and audits each; returns how many ended. */
async function endSessions (context: CommandContext, user: UserRecord, reason: string, why: string | undefined): Promise<number> {
  const { publisher, published } = feedPublisher(context)
  const ended = await sessionStore(context, publisher).revokeAll(user.id)
  for (const sid of ended) auditOperator(context.log, 'session.revoked', { user: user.id, sid, reason, operator: context.operator, why })
  if (!published()) {
    throw new CommandError(`the ${ended.length} sessions of ${user.username} ended, but the revocation feed could not be told: ` +
      'verifiers following it accept their access tokens until they expire')
  }
  return ended.length
}

async function announceKeyringChange (context: CommandContext): Promise<void> {
  // Instances reread at their next reload anyway; this only makes it immediate.
  await context.redis.publish(context.keys.signingKeysChanged, 'changed').catch(() => 0)
}

export async function listKeys (context: CommandContext): Promise<CommandOutput> {
  const { config } = context
  if (config.SIGNING_KEY !== undefined) {
    const { signer, published } = parseSuppliedKeys(config.SIGNING_KEY)
    return {
      source: 'SIGNING_KEY',
      keys: [{ kid: signer.kid, alg: signer.alg, state: 'active' }, ...published.map((key) => ({ kid: key.kid, alg: key.alg, state: 'published' }))]
    }
  }
  const json = await context.redis.get(context.keys.signingKeys)
  const keys = json === null ? [] : parseKeyring(json)
  return { source: 'redis', keys: keyStates(keys, context.now(), rotationPolicy(config).retireAfterMs).map(describeKey) }
}

export async function rotateKeys (context: CommandContext, args: CommandArgs): Promise<CommandOutput> {
  const { config } = context
  if (config.SIGNING_KEY !== undefined) {
    throw new CommandError(`refused: ${SUPPLIED_KEYS}. ` +
      'Rotate them there: add the new key after the current one, wait KEY_PUBLISH_AHEAD, move it first, ' +
      'remove the old one after ACCESS_TOKEN_TTL + CLOCK_SKEW (see docs/signing-keys.md, "Key rotation")', 2)
  }
  const policy = rotationPolicy(config)
  const now = context.now()
  const result = await rotateSigningKey(context.redis, context.keys.signingKeys, policy, 'operator', now)
  const keys = keyStates(result.keys, now, policy.retireAfterMs).map(describeKey)
  if (result.status === 'full') {
    throw new CommandError(`the keyring already holds ${result.keys.length} keys; wait until a retiring key has retired`)
  }
  const line: CommandOutput = { result: result.status }
  if (result.key !== undefined) {
    line.kid = result.key.kid
    line.activate_at = new Date(result.key.activate_at).toISOString()
    await announceKeyringChange(context)
    auditOperator(context.log, 'signing_key.rotated', { kid: result.key.kid, activate_at: line.activate_at as string, operator: context.operator, why: args.reason })
  }
  if (result.status === 'pending') {
    const pending = keys.find((key) => key.state === 'pending')
    line.reason = 'a key is pending already; it signs from its activate_at'
    line.kid = pending?.kid
    line.activate_at = pending?.activate_at
  }
  line.keys = keys
  return line
}

/**
 * A leaked signing key: out of the keyring (so out of the JWKS, and no
 * instance signs with it once told, which the announcement makes
 * immediate), a fresh key signing at once if it was the signer, and a
 * 'key' event on the revocation feed so that verifiers following it refuse
 * its tokens now rather than at their next key-set fetch.
 */
export async function revokeKey (context: CommandContext, args: CommandArgs): Promise<CommandOutput> {
  const { config } = context
  const kid = args.positionals[0]!
  const policy = rotationPolicy(config)
  const now = context.now()
  // Every token the key can have signed has expired by then, a late signer one reload behind included.
  const until = now + policy.retireAfterMs
  let line: CommandOutput
  if (args.feedOnly === true) {
    line = await checkFeedOnly(context, kid)
  } else {
    if (config.SIGNING_KEY !== undefined) {
      throw new CommandError(`refused: ${SUPPLIED_KEYS}. Replace the leaked key there (a new key first, the leaked one removed), ` +
        `restart every instance, then run \`keys revoke ${kid} --feed-only\` so verifiers following the revocation feed refuse its tokens`, 2)
    }
    const result = await revokeSigningKey(context.redis, context.keys.signingKeys, kid, now)
    if (result.status === 'not-found') throw new CommandError(`no signing key ${kid} in the keyring (see \`keys list\`)`)
    await announceKeyringChange(context)
    line = { result: result.status, kid }
    if (result.replacement !== undefined) line.signer = result.replacement.kid
    line.keys = keyStates(result.keys, now, policy.retireAfterMs).map(describeKey)
  }
  const { publisher, published } = feedPublisher(context)
  await publisher.signingKeyRevoked(kid, until)
  auditOperator(context.log, 'signing_key.revoked', {
    kid, replaced_by: line.signer as string | undefined, feed: published() ? 'published' : 'failed', operator: context.operator, why: args.reason
  })
  if (!published()) {
    throw new CommandError(`${line.result === 'feed-only' ? 'nothing changed' : 'the key is out of the keyring'}, but the revocation feed could not be told: ` +
      `verifiers following it refuse its tokens only at their next key-set fetch; repeat with \`keys revoke ${kid} --feed-only\``)
  }
  return line
}

/** `--feed-only` publishes, never for a key that still signs or is published here. */
async function checkFeedOnly (context: CommandContext, kid: string): Promise<CommandOutput> {
  const { config } = context
  if (config.SIGNING_KEY !== undefined) {
    const { signer, published } = parseSuppliedKeys(config.SIGNING_KEY)
    if (signer.kid === kid) throw new CommandError(`refused: ${kid} is the key SIGNING_KEY signs with; replace it there first`, 2)
    if (published.some((key) => key.kid === kid)) throw new CommandError(`refused: ${kid} is still published by SIGNING_KEY; remove it there first`, 2)
  } else {
    const json = await context.redis.get(context.keys.signingKeys)
    if (json !== null && parseKeyring(json).some((key) => key.kid === kid)) {
      throw new CommandError(`refused: ${kid} is in the keyring; revoke it without --feed-only`, 2)
    }
  }
  return { result: 'feed-only', kid }
}

export async function revokeUserSessions (context: CommandContext, args: CommandArgs): Promise<CommandOutput> {
  const user = await findUser(context, args.user!)
  const sessions = await endSessions(context, user, 'operator', args.reason)
  return { result: 'revoked', user: user.id, username: user.username, sessions }
}

/**
 * Locks first, then ends the sessions: a login racing the command either
 * sees the lock, or created its session before the sweep, or is refused by
 * the session-creation script because the lock raised the credential version.
 */
export async function lockUser (context: CommandContext, args: CommandArgs): Promise<CommandOutput> {
  const user = await findUser(context, args.positionals[0]!)
  const changed = await new RedisUserStore(context.redis, context.keys, context.now).setLocked(user.id, true, context.now(), args.reason ?? '')
  if (changed === 'not_found') throw new CommandError(`no user named ${JSON.stringify(user.username)}`)
  if (changed === 'changed') auditOperator(context.log, 'user.locked', { user: user.id, operator: context.operator, why: args.reason })
  // Also when it was locked already: a run that failed half-way is finished by repeating it.
  const sessions = await endSessions(context, user, 'user_locked', args.reason)
  return { result: changed === 'changed' ? 'locked' : 'already-locked', user: user.id, username: user.username, sessions }
}

export async function unlockUser (context: CommandContext, args: CommandArgs): Promise<CommandOutput> {
  const user = await findUser(context, args.positionals[0]!)
  const changed = await new RedisUserStore(context.redis, context.keys, context.now).setLocked(user.id, false, context.now())
  if (changed === 'not_found') throw new CommandError(`no user named ${JSON.stringify(user.username)}`)
  if (changed === 'changed') auditOperator(context.log, 'user.unlocked', { user: user.id, operator: context.operator, why: args.reason })
  return { result: changed === 'changed' ? 'unlocked' : 'not-locked', user: user.id, username: user.username }
}

/** Registers the service's scripts on the command's own client. */
export function prepareClient (redis: RedisClient): void {
  defineScripts(redis)
}
