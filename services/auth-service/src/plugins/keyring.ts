import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { RedisClient } from '../redis/client.js'
import { BatonError } from '@baton/tokens'
import { storage } from '../redis/errors.js'
import { parseSuppliedKeys, signingKeyFromPem, type PublishedKey, type SigningKey } from '../core/keys/signing-key.js'
import {
  DEFAULT_ROTATION_POLICY, keyStates, parseKeyring, rotationDue, signerOf,
  type KeyState, type KeyStatus, type RotationPolicy, type StoredSigningKey
} from '../core/keys/rotation-policy.js'
import { pruneSigningKeys, rotateSigningKey, type RotationResult } from '../core/keys/keyring-store.js'

/** A key's state; operator-supplied keys after the first are just 'published'. */
export type KeyringKeyState = KeyState | 'published'

export type KeyringKeyStatus = { kid: string, state: KeyringKeyState } & Partial<Omit<KeyStatus, 'kid' | 'state'>>

export interface Keyring {
  ready: () => boolean
  /** The key that signs new tokens now; 503 until the keyring has loaded. */
  current: () => SigningKey
  /** Keys verifiers must accept now: pending, active and retiring ones. */
  all: () => readonly PublishedKey[]
  /** Every key held, with its state now. */
  states: () => KeyringKeyStatus[]
  refreshTokenSecret: () => string
  /**
   * Reads the generated keyring from Redis, adds a key when the schedule says
   * so and deletes retired ones. Runs every KEYRING_RELOAD_INTERVAL; tests
   * that move the clock call it. Rejects when Redis fails; the view is kept.
   */
  sync: () => Promise<void>
  /** Adds a pending key now, as `baton-admin keys rotate` does; throws with operator-supplied keys. */
  rotate: () => Promise<RotationResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    keyring: Keyring
  }
}

export interface KeyringOptions {
  /**
   * Operator-supplied PEM text: the first key signs, any further keys are
   * only published. Undefined: keys are generated and rotated through Redis.
   */
  signingKeyPem: string | undefined
  refreshTokenSecret: string | undefined
  signingKeysKey: string
  refreshTokenSecretKey: string
  now: () => number
  /** How the generated keyring rotates; default: the configuration's defaults. */
  rotation?: RotationPolicy
  /**
   * Pub/sub channel on which operator commands announce a changed keyring
   * (`baton-admin keys revoke`): the instance rereads it at once instead of
   * at its next reload. Undefined: reloads only.
   */
  changesChannel?: string
}

/**
 * The shared refresh-token secret: the stored one, else `held` (the one this
 * instance already uses: Redis lost it) or a new one, written so that every
 * instance reads the same.
 */
async function loadRefreshSecret (redis: RedisClient, key: string, held: string | undefined): Promise<string> {
  // Read first: a read-only replica can still serve what it holds.
  const stored = await storage(redis.get(key))
  if (stored !== null) return stored
  await storage(redis.set(key, held ?? randomBytes(32).toString('base64url'), 'NX'))
  const secret = await storage(redis.get(key))
  if (secret === null) throw new BatonError('BATON_UNAVAILABLE', 'refresh-token secret could not be stored')
  return secret
}

const notLoaded = (what: string): BatonError =>
  new BatonError('BATON_UNAVAILABLE', `${what} not loaded yet`, { headers: { 'retry-after': '1' } })

/**
 * Signing keys and the refresh-token secret. Operator-supplied keys are
 * fixed for the life of the process. Generated keys live in Redis and
 * rotate (see key-rotation.ts): every instance reloads them each
 * KEYRING_RELOAD_INTERVAL and at once after its own changes, and derives the
 * signer from the stored times and its clock. With Redis down at start the
 * service still comes up, unready, and keeps trying.
 */
export const keyringPlugin = fp(async function keyring (app: FastifyInstance, opts: KeyringOptions) {
  const policy = opts.rotation ?? DEFAULT_ROTATION_POLICY
  const supplied = opts.signingKeyPem === undefined ? undefined : parseSuppliedKeys(opts.signingKeyPem)
  let refreshSecret = opts.refreshTokenSecret

  // Generated keyring: the stored entries, and one SigningKey per kid that
  // outlives reloads, so signers and the verifier's per-key caches are reused.
  let stored: StoredSigningKey[] = []
  let storedJson: string | undefined
  const signers = new Map<string, SigningKey>()
  let lastSignerKid: string | undefined

  const loaded = (): boolean => (supplied !== undefined || stored.length > 0) && refreshSecret !== undefined

  function apply (json: string): void {
    if (json === storedJson) return
    const next = parseKeyring(json)
    if (next.length === 0) throw new Error('the stored keyring is empty')
    for (const entry of next) {
      if (signers.has(entry.kid)) continue
      const key = signingKeyFromPem(entry.pem)
      if (key.kid !== entry.kid) throw new Error(`the stored key ${entry.kid} does not match its kid`)
      signers.set(entry.kid, key)
    }
    for (const kid of signers.keys()) {
      if (!next.some((entry) => entry.kid === kid)) signers.delete(kid)
    }
    stored = next
    storedJson = json
    app.log.info({ keys: keyStates(stored, opts.now(), policy.retireAfterMs).map(({ kid, state }) => ({ kid, state })) }, 'signing keys loaded')
  }

  function afterRotation (result: RotationResult): RotationResult {
    apply(result.json)
    if (result.key !== undefined) {
      app.log.info({ kid: result.key.kid, activate_at: new Date(result.key.activate_at).toISOString(), status: result.status }, 'signing key added')
    }
    return result
  }

  async function loadKeyring (): Promise<void> {
    const json = await storage(app.redis.get(opts.signingKeysKey))
    if (json !== null) {
      apply(json)
    } else if (storedJson !== undefined) {
      // Redis lost the keyring (restarted without persistence, flushed): put back
      // what we hold, so tokens already signed keep verifying on every instance.
      app.log.warn('the stored keyring is gone; restoring it from memory')
      await storage(app.redis.set(opts.signingKeysKey, storedJson, 'NX'))
      const restored = await storage(app.redis.get(opts.signingKeysKey))
      if (restored !== null) apply(restored)
    } else {
      afterRotation(await storage(rotateSigningKey(app.redis, opts.signingKeysKey, policy, 'init', opts.now())))
    }
  }

  let syncing: Promise<void> | undefined
  let warnedFull = false
  async function syncOnce (): Promise<void> {
    if (opts.refreshTokenSecret === undefined) {
      // Read on every sync: should Redis lose it, the one held goes back before another instance makes up its own.
      const held = refreshSecret
      refreshSecret = await loadRefreshSecret(app.redis, opts.refreshTokenSecretKey, held)
      if (held !== undefined && refreshSecret !== held) app.log.warn('the stored refresh-token secret changed; refresh tokens issued under the old one are refused')
    }
    if (supplied !== undefined) return
    await loadKeyring()
    const now = opts.now()
    if (rotationDue(stored, now, policy.rotationIntervalMs)) {
      // The script checks again: of several instances due at once, one adds the key.
      const { status } = afterRotation(await storage(rotateSigningKey(app.redis, opts.signingKeysKey, policy, 'scheduled', now)))
      if (status === 'full' && !warnedFull) {
        app.log.warn({ maxKeys: policy.maxKeys }, 'scheduled key rotation skipped: the keyring is full until a key retires (KEY_ROTATION_INTERVAL shorter than ACCESS_TOKEN_TTL?)')
      }
      warnedFull = status === 'full'
    }
    if (keyStates(stored, now, policy.retireAfterMs).some((key) => key.state === 'retired')) {
      const { removed, json } = await storage(pruneSigningKeys(app.redis, opts.signingKeysKey, policy, now))
      if (json !== null) apply(json)
      if (removed > 0) app.log.info({ removed }, 'retired signing keys deleted')
    }
  }
  // Concurrent callers (the timer, a test, a rotation) share one run.
  const sync = async (): Promise<void> => {
    syncing ??= syncOnce().finally(() => { syncing = undefined })
    await syncing
  }

  function states (): KeyringKeyStatus[] {
    if (supplied !== undefined) {
      return [{ kid: supplied.signer.kid, state: 'active' }, ...supplied.published.map((key) => ({ kid: key.kid, state: 'published' as const }))]
    }
    return keyStates(stored, opts.now(), policy.retireAfterMs)
  }

  app.decorate('keyring', {
    ready: loaded,
    current: () => {
      if (supplied !== undefined) return supplied.signer
      const entry = signerOf(stored, opts.now())
      const key = entry === undefined ? undefined : signers.get(entry.kid)
      if (key === undefined) throw notLoaded('signing keys are')
      if (key.kid !== lastSignerKid) {
        if (lastSignerKid !== undefined) app.log.info({ kid: key.kid, previous: lastSignerKid }, 'signing with a new key')
        lastSignerKid = key.kid
      }
      return key
    },
    all: () => {
      if (supplied !== undefined) return [supplied.signer, ...supplied.published]
      const published: PublishedKey[] = []
      for (const status of keyStates(stored, opts.now(), policy.retireAfterMs)) {
        const key = signers.get(status.kid)
        if (status.state !== 'retired' && key !== undefined) published.push(key)
      }
      return published
    },
    states,
    refreshTokenSecret: () => {
      if (refreshSecret === undefined) throw notLoaded('keys are')
      return refreshSecret
    },
    sync,
    rotate: async () => {
      if (supplied !== undefined) {
        throw new Error('signing keys are supplied by the operator (SIGNING_KEY / SIGNING_KEY_FILE); rotate them there')
      }
      return afterRotation(await storage(rotateSigningKey(app.redis, opts.signingKeysKey, policy, 'operator', opts.now())))
    }
  } satisfies Keyring)

  if (app.hasDecorator('metrics')) {
    // Computed at scrape time, so it follows the clock rather than the last reload.
    // Duck-typed (name, help, type, get) to spare this package a prom-client dependency of its own.
    const name = 'baton_auth_signing_keys'
    const help = 'Signing keys held, by state (operator-supplied keys after the first: published)'
    app.metrics.registerMetric({
      name,
      help,
      type: 'gauge',
      // Nothing to reset: every scrape recounts.
      reset: () => {},
      get: async () => {
        const counts = new Map<string, number>([['pending', 0], ['active', 0], ['retiring', 0], ['retired', 0]])
        for (const key of states()) counts.set(key.state, (counts.get(key.state) ?? 0) + 1)
        return { name, help, type: 'gauge', aggregator: 'sum', values: [...counts].map(([state, value]) => ({ labels: { state }, value })) }
      }
    } as unknown as Parameters<typeof app.metrics.registerMetric>[0])
  }

  let timer: NodeJS.Timeout | undefined
  let closed = false
  let lastFailureLog = 0
  async function tick (): Promise<void> {
    try {
      await sync()
    } catch (error) {
      // Redis away: say so now and then, keep the keys already loaded.
      if (!loaded() || Date.now() - lastFailureLog > 10_000) {
        lastFailureLog = Date.now()
        app.log.warn({ err: { message: (error as Error).message } }, loaded() ? 'signing keys not reloaded; keeping the loaded ones' : 'keys not loaded yet; retrying')
      }
    }
    if (closed || (supplied !== undefined && loaded())) return
    // Until the first load, retry every second whatever the reload interval.
    timer = setTimeout(() => { void tick() }, loaded() ? policy.reloadIntervalMs : Math.min(1000, policy.reloadIntervalMs))
    timer.unref()
  }

  // The connection is opened, not awaited, as the app registers; a start that
  // reads before it is up would stay unready for a retry interval for nothing.
  async function connected (): Promise<void> {
    const client = app.redis
    if (client.status !== 'connecting' && client.status !== 'connect') return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timeout)
        client.off('ready', done).off('close', done)
        resolve()
      }
      const timeout = setTimeout(done, 2000)
      client.once('ready', done).once('close', done)
    })
  }

  // A revoked key must stop signing everywhere now, not one reload later: a
  // connection of its own listens for the commands' announcements. Missed
  // ones (the link was down) are caught by the next reload all the same.
  let subscriber: RedisClient | undefined
  function listenForChanges (channel: string): void {
    const client = app.redis.duplicate()
    subscriber = client
    let subscribed = false
    client.on('error', () => {})
    // ioredis subscribes again by itself after a reconnect; this covers a first connect that failed.
    client.on('ready', () => {
      if (!subscribed) client.subscribe(channel).then(() => { subscribed = true }, () => {})
    })
    client.on('message', (from: string) => {
      if (from !== channel || closed) return
      // A reload already under way may have read the keyring before the change: reload after it.
      void (async () => {
        await syncing?.catch(() => {})
        try {
          await sync()
          app.log.info({ keys: states().map(({ kid, state }) => ({ kid, state })) }, 'signing keys reloaded on an operator\'s change')
        } catch (error) {
          app.log.warn({ err: { message: (error as Error).message } }, 'signing keys not reloaded after an operator\'s change; the next reload retries')
        }
      })()
    })
    client.connect().catch(() => {})
  }

  app.addReadinessCheck('keys', () => loaded() ? undefined : 'signing keys not loaded')
  app.addHook('onReady', async () => {
    await connected()
    if (supplied === undefined && opts.changesChannel !== undefined) listenForChanges(opts.changesChannel)
    await tick()
  })
  app.addHook('onClose', async () => {
    closed = true
    clearTimeout(timer)
    subscriber?.disconnect()
  })
}, { name: 'baton-keyring', fastify: '5.x', dependencies: ['baton-redis', 'baton-health'] })
