import { createHash } from 'node:crypto'
import type { ChainableCommander } from 'ioredis'
import { BatonError } from '@baton/tokens'
import type { RedisClient } from '../../redis/client.js'
import type { RedisKeys } from '../../redis/keys.js'
import { storage } from '../../redis/errors.js'
import { replicatedWrite, type Replication } from '../../redis/replication.js'
import { isId, randomId } from '../ids.js'
import { ipBucket } from '../ip-bucket.js'
import type { Requester } from '../request-context.js'
import type { RevocationPublisher } from '../revocation-publisher.js'
import { sealSuccessor, unsealSuccessor, type RefreshTokenCodec } from './refresh-token-codec.js'

export interface SessionLifetimes {
  /** A session ends this long after its last refresh (ms). */
  idleMs: number
  /** …and this long after login at the latest (ms). */
  absoluteMs: number
  /** A retry of the just-rotated token inside this window gets the same successor (ms). */
  graceMs: number
  /** How many such retries one rotation answers; further ones are refused. */
  graceRetries: number
  maxSessionsPerUser: number
}

export interface NewSession {
  uid: string
  username: string
  scope: string
  /** The user's credential version read with the password hash the login was verified against. */
  credentialVersion: number
  /** RFC 7638 thumbprint of the DPoP key the login proved: the session's refresh tokens are bound to it. */
  jkt?: string | undefined
}

/** The DPoP side of a refresh: the key the request proved, and whether the client must prove one. */
export interface RefreshProof {
  /** RFC 7638 thumbprint of the proof's key; undefined: the request carried no proof. */
  jkt: string | undefined
  required: boolean
}

export interface SessionTokens {
  uid: string
  sid: string
  username: string
  /** The scope granted at login; a refresh may narrow what an access token carries, never this. */
  scope: string
  refreshToken: string
  /** When the refresh token lapses unless used first: the session's idle or absolute end, whichever is sooner (ms). */
  expiresAt: number
}

/**
 * Why a spent refresh token counted as stolen: it came back outside a grace
 * retry, or inside the window from another network or user agent than the
 * rotation it repeats.
 */
export type ReuseReason = 'spent_token' | 'other_network' | 'other_user_agent' | 'missing_dpop_proof' | 'other_dpop_key'

export type RotateOutcome =
  | ({ outcome: 'rotated' | 'grace_retry' } & SessionTokens)
  | { outcome: 'reuse_detected', uid: string, sid: string, reason: ReuseReason }
  | { outcome: 'malformed' | 'unknown' | 'wrong_client' | 'expired' | 'invalid_scope' | 'grace_exhausted' | 'dpop_required', uid?: string, sid?: string }

const REUSE_REASONS = new Set<string>(['spent_token', 'other_network', 'other_user_agent', 'missing_dpop_proof', 'other_dpop_key'])

/**
 * The client instance a grace retry must come from: the same network (an
 * IPv4 address, an IPv6 /64) and the same user agent, hashed so that its
 * length is bounded whatever the header holds.
 */
export function clientInstance (context: Pick<Requester, 'ip' | 'userAgent'>): { network: string, userAgent: string } {
  return { network: ipBucket(context.ip), userAgent: createHash('sha256').update(context.userAgent).digest('base64url') }
}

export interface SessionInfo {
  id: string
  created_at: string
  last_used_at: string
  client_id: string
  user_agent: string
  ip: string
}

const MAX_USER_AGENT = 256

/** What a session store needs beyond Redis; each defaults to "none". */
export interface SessionStoreOptions {
  replication?: Replication
  deadline?: () => number
  feed?: RevocationPublisher
}

// A round adds what changed since the last; more than a few means a storm of logins for one user.
const MAX_DECLARE_ROUNDS = 4

/**
 * Sessions (refresh-token families) in Redis. Each state change is one Lua
 * script over keys that share the user's hash tag. Every session or token it
 * ends is then published to the revocation feed, whichever path ended it.
 */
export class SessionStore {
  readonly #redis: RedisClient
  readonly #keys: RedisKeys
  readonly #codec: RefreshTokenCodec
  readonly #lifetimes: SessionLifetimes
  readonly #now: () => number
  readonly #replication: Replication
  readonly #deadline: () => number
  readonly #feed: RevocationPublisher | undefined

  /**
   * `codec`: reads and issues refresh tokens under the secret in force.
   * `replication`: how many replicas must hold a session write before a token is handed out.
   * `deadline`: the Redis time after which a write sent now must not run (RedisClock).
   * `feed`: where ended sessions are announced to verifiers, if anywhere.
   */
  constructor (redis: RedisClient, keys: RedisKeys, codec: RefreshTokenCodec, lifetimes: SessionLifetimes, now: () => number, options: SessionStoreOptions = {}) {
    this.#replication = options.replication ?? { replicas: 0, timeoutMs: 0 }
    this.#deadline = options.deadline ?? (() => 0)
    this.#feed = options.feed
    this.#redis = redis
    this.#keys = keys
    this.#codec = codec
    this.#lifetimes = lifetimes
    this.#now = now
  }

  /**
   * Starts a session and returns its first refresh token, plus the sessions
   * evicted to stay under the per-user maximum; undefined, creating nothing,
   * when the user's credentials changed after `credentialVersion` was read.
   */
  async create (session: NewSession, context: Requester): Promise<(SessionTokens & { evicted: string[] }) | undefined> {
    const now = this.#now()
    const sid = randomId()
    const issued = this.#codec.issue(session.uid, sid)
    const absoluteExpiry = now + this.#lifetimes.absoluteMs
    const expiry = Math.min(now + this.#lifetimes.idleMs, absoluteExpiry)
    const fields = [
      'cur', issued.hash,
      'client_id', context.clientId,
      'scope', session.scope,
      'username', session.username,
      'user_agent', context.userAgent.slice(0, MAX_USER_AGENT),
      'ip', context.ip,
      ...(session.jkt === undefined ? [] : ['jkt', session.jkt])
    ]
    const evicted = await this.#withDeclaredSessions(session.uid, [], async (declared) => await this.#write<string[]>((redis) => redis.batonCreateSession(
      3 + declared.length, this.#keys.session(session.uid, sid), this.#keys.sessionIndex(session.uid), this.#keys.user(session.uid), ...this.#sessionKeys(session.uid, declared),
      sid, now, expiry, absoluteExpiry, this.#lifetimes.maxSessionsPerUser, this.#deadline(), declared.length, session.credentialVersion, ...declared, ...fields
    )).then(([status = '', ...sids]) => [status, status === 'credential_changed' ? undefined : sids] as const))
    if (evicted === undefined) return undefined
    await this.#feed?.sessionsEnded(session.uid, evicted)
    return { uid: session.uid, sid, username: session.username, scope: session.scope, refreshToken: issued.token, expiresAt: expiry, evicted }
  }

  /**
   * Exchanges a refresh token for its successor in one round trip. A retry of
   * the just-rotated token inside the grace window, from the client instance
   * that rotated it, gets the same successor back, a bounded number of times;
   * any other reuse ends the session. A session bound to a DPoP key
   * rotates only with a proof of that key (`proof`); without one, or with
   * another key's, it ends.
   */
  async rotate (refreshToken: string, context: Requester, requestedScope = '', proof: RefreshProof = { jkt: undefined, required: false }): Promise<RotateOutcome> {
    const presented = this.#codec.parse(refreshToken)
    if (presented === undefined) return { outcome: 'malformed' }
    const { uid, sid } = presented
    const successor = this.#codec.issue(uid, sid)
    const sealed = sealSuccessor(successor.token, presented.secret, sid)
    const instance = clientInstance(context)
    const reply = await this.#write<string[]>((redis) => redis.batonRotateRefresh(
      this.#keys.session(uid, sid), this.#keys.sessionIndex(uid),
      presented.hash, successor.hash, sealed, this.#now(),
      this.#lifetimes.idleMs, this.#lifetimes.graceMs, context.clientId, sid,
      context.userAgent.slice(0, MAX_USER_AGENT), context.ip, requestedScope, this.#deadline(),
      instance.network, instance.userAgent, this.#lifetimes.graceRetries,
      proof.jkt ?? '', proof.required ? '1' : '0'
    ))
    const [outcome, value, scope = '', username = '', graceExpiry] = reply
    if (outcome === 'rotated') {
      return { outcome, uid, sid, scope, username, refreshToken: successor.token, expiresAt: Number(value) }
    }
    if (outcome === 'grace_retry' && value !== undefined) {
      const previousSuccessor = unsealSuccessor(value, presented.secret, sid)
      if (previousSuccessor !== undefined) return { outcome, uid, sid, scope, username, refreshToken: previousSuccessor, expiresAt: Number(graceExpiry) }
      return { outcome: 'unknown', uid, sid }
    }
    if (outcome === 'reuse_detected' && value !== undefined && REUSE_REASONS.has(value)) {
      await this.#feed?.sessionsEnded(uid, [sid])
      return { outcome, uid, sid, reason: value as ReuseReason }
    }
    if (outcome === 'unknown' || outcome === 'wrong_client' || outcome === 'expired' || outcome === 'invalid_scope' || outcome === 'grace_exhausted' || outcome === 'dpop_required') {
      return { outcome, uid, sid }
    }
    throw new Error(`unexpected reply from rotate-refresh: ${String(outcome)}`)
  }

  async revoke (uid: string, sid: string): Promise<boolean> {
    if (!isId(uid) || !isId(sid)) return false
    const ended = await this.#write<number>((redis) => redis.batonRevokeSession(this.#keys.session(uid, sid), this.#keys.sessionIndex(uid), sid, '')) === 1
    if (ended) await this.#feed?.sessionsEnded(uid, [sid])
    return ended
  }

  /**
   * RFC 7009 for refresh tokens: ends the token's whole session if the token
   * is genuine and belongs to `clientId`. Unknown or forged tokens are a no-op.
   */
  async revokeByRefreshToken (refreshToken: string, clientId: string): Promise<{ outcome: 'revoked' | 'not_found' | 'other_client', uid?: string, sid?: string }> {
    const parsed = this.#codec.parse(refreshToken)
    if (parsed === undefined) return { outcome: 'not_found' }
    const result = await this.#write<number>((redis) => redis.batonRevokeSession(this.#keys.session(parsed.uid, parsed.sid), this.#keys.sessionIndex(parsed.uid), parsed.sid, clientId))
    const outcome = result === 1 ? 'revoked' : result === -1 ? 'other_client' : 'not_found'
    if (outcome === 'revoked') await this.#feed?.sessionsEnded(parsed.uid, [parsed.sid])
    return { outcome, uid: parsed.uid, sid: parsed.sid }
  }

  /** Puts one access token on the revocation list until it would have expired anyway. */
  async revokeAccessToken (sub: string, jti: string, expSeconds: number, skewSeconds: number): Promise<void> {
    const ttl = expSeconds * 1000 + skewSeconds * 1000 - this.#now()
    if (ttl <= 0) return
    await this.#write((redis) => redis.set(this.#keys.revokedToken(sub, jti), '1', 'PX', ttl))
    await this.#feed?.accessTokenRevoked(sub, jti, expSeconds)
  }

  /** Whether an access token is still honoured: its session lives and it is not revoked. One round trip. */
  async isAccessTokenLive (sub: string, jti: string, sid: string | undefined): Promise<boolean> {
    const revoked = this.#keys.revokedToken(sub, jti)
    const session = sid === undefined ? revoked : this.#keys.session(sub, sid)
    return await storage(this.#redis.batonTokenStatus(session, revoked, this.#now(), sid === undefined ? '0' : '1')) === 1
  }

  /** RFC 7662 view of a refresh token: its session's data if it is the session's current token. */
  async introspectRefreshToken (refreshToken: string): Promise<{ uid: string, sid: string, clientId: string, scope: string, username: string, exp: number, iat: number, jkt?: string } | undefined> {
    const parsed = this.#codec.parse(refreshToken)
    if (parsed === undefined) return undefined
    const [current, clientId, scope, username, idleExpiry, absoluteExpiry, issuedAt, createdAt, jkt] = await storage(this.#redis.hmget(
      this.#keys.session(parsed.uid, parsed.sid), 'cur', 'client_id', 'scope', 'username', 'exp', 'abs_exp', 'prev_at', 'created_at', 'jkt'))
    const now = this.#now()
    if (current !== parsed.hash || clientId == null || idleExpiry == null || absoluteExpiry == null) return undefined
    const expiry = Math.min(Number(idleExpiry), Number(absoluteExpiry))
    if (expiry <= now) return undefined
    return {
      uid: parsed.uid,
      sid: parsed.sid,
      clientId,
      scope: scope ?? '',
      username: username ?? '',
      exp: Math.floor(expiry / 1000),
      iat: Math.floor(Number(issuedAt ?? createdAt) / 1000),
      ...(jkt == null ? {} : { jkt })
    }
  }

  /**
   * Ends every session of the user but `keepSid`, and in the same step raises
   * the user's credential version: a login verified before this call creates
   * no session after it. Returns the ended session ids.
   */
  async revokeAll (uid: string, keepSid = ''): Promise<string[]> {
    const ended = await this.#withDeclaredSessions(uid, [], async (declared) => await this.#write<[string, string[]]>((redis) => redis.batonRevokeUserSessions(
      2 + declared.length, this.#keys.sessionIndex(uid), this.#keys.user(uid), ...this.#sessionKeys(uid, declared), keepSid, ...declared)))
    // The ended sessions by id, not "all of this user's tokens": the kept session and any login after this one stay valid.
    await this.#feed?.sessionsEnded(uid, ended)
    return ended
  }

  async list (uid: string): Promise<SessionInfo[]> {
    const now = this.#now()
    const rows = await this.#withDeclaredSessions(uid, [], async (declared) => await storage(this.#redis.batonListSessions(
      1 + declared.length, this.#keys.sessionIndex(uid), ...this.#sessionKeys(uid, declared), now, ...declared))) as string[][]
    return rows.map(([id = '', createdAt = '0', lastUsedAt = '0', clientId = '', userAgent = '', ip = '']) => ({
      id,
      created_at: new Date(Number(createdAt)).toISOString(),
      last_used_at: new Date(Number(lastUsedAt)).toISOString(),
      client_id: clientId,
      user_agent: userAgent,
      ip
    }))
  }

  /** A session write: counted once the configured number of replicas hold it. */
  async #write<T> (write: (redis: RedisClient | ChainableCommander) => unknown): Promise<T> {
    return await replicatedWrite<T>(this.#redis, this.#replication, write)
  }

  #sessionKeys (uid: string, sids: readonly string[]): string[] {
    return sids.map((sid) => this.#keys.session(uid, sid))
  }

  /**
   * Runs a script that walks a user's session index. A script may touch only
   * the keys it declares (Redis Cluster checks), so it answers 'undeclared'
   * with the sids it found, changing nothing, and runs again with them
   * declared; only sessions created in between make a further round.
   */
  async #withDeclaredSessions<T> (uid: string, initial: readonly string[], run: (declared: string[]) => Promise<readonly [string, T]>): Promise<T> {
    const declared = new Set(initial)
    for (let round = 0; round < MAX_DECLARE_ROUNDS; round++) {
      const [status, value] = await run([...declared])
      if (status !== 'undeclared') return value
      const found = value as unknown as string[]
      // Bounded by the per-user maximum: an index holds no more sids than that (plus ones not yet expired).
      for (const sid of found) if (isId(sid)) declared.add(sid)
    }
    throw new BatonError('BATON_UNAVAILABLE', `the sessions of user ${uid} kept changing; try again`, { headers: { 'retry-after': '1' } })
  }
}
