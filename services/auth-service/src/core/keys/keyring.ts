import { BatonError } from '@baton/tokens'
import type { RedisClient } from '../../redis/client.js'
import { storage } from '../../redis/errors.js'
import type { Logger } from '../logger.js'
import { loadRefreshSecret, pruneSigningKeys, rotateSigningKey, type RotationResult } from './keyring-store.js'
import {
  DEFAULT_ROTATION_POLICY, keyStates, parseKeyring, rotationDue, signerOf,
  type KeyState, type KeyStatus, type RotationPolicy, type StoredSigningKey
} from './rotation-policy.js'
import { parseSuppliedKeys, signingKeyFromPem, type PublishedKey, type SigningKey } from './signing-key.js'

/** A key's state; operator-supplied keys after the first are just 'published'. */
export type KeyringKeyState = KeyState | 'published'

export type KeyringKeyStatus = { kid: string, state: KeyringKeyState } & Partial<Omit<KeyStatus, 'kid' | 'state'>>

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

const notLoaded = (what: string): BatonError =>
  new BatonError('BATON_UNAVAILABLE', `${what} not loaded yet`, { headers: { 'retry-after': '1' } })

/**
 * Signing keys and the refresh-token secret. Operator-supplied keys are
 * fixed for the life of the process. Generated keys live in Redis and
 * rotate (see rotation-policy.ts): every instance reloads them each
 * KEYRING_RELOAD_INTERVAL and at once after its own changes, and derives the
 * signer from the stored times and its clock. With Redis down at start the
 * service still comes up, unready, and keeps trying.
 */
export class Keyring {
  readonly #redis: RedisClient
  readonly #opts: KeyringOptions
  readonly #log: Logger
  readonly #policy: RotationPolicy
  readonly #supplied: ReturnType<typeof parseSuppliedKeys> | undefined
  #refreshSecret: string | undefined

  // Generated keyring: the stored entries, and one SigningKey per kid that
  // outlives reloads, so signers and the verifier's per-key caches are reused.
  #stored: StoredSigningKey[] = []
  #storedJson: string | undefined
  readonly #signers = new Map<string, SigningKey>()
  #lastSignerKid: string | undefined

  #syncing: Promise<void> | undefined
  #warnedFull = false
  #timer: NodeJS.Timeout | undefined
  #closed = false
  #lastFailureLog = 0
  #subscriber: RedisClient | undefined

  constructor (redis: RedisClient, opts: KeyringOptions, log: Logger) {
    this.#redis = redis
    this.#opts = opts
    this.#log = log
    this.#policy = opts.rotation ?? DEFAULT_ROTATION_POLICY
    this.#supplied = opts.signingKeyPem === undefined ? undefined : parseSuppliedKeys(opts.signingKeyPem)
    this.#refreshSecret = opts.refreshTokenSecret
  }

  /** Whether a key signs and the refresh-token secret is known: the service can issue tokens. */
  ready (): boolean {
    return (this.#supplied !== undefined || this.#stored.length > 0) && this.#refreshSecret !== undefined
  }

  /** The key that signs new tokens now; 503 until the keyring has loaded. */
  current (): SigningKey {
    if (this.#supplied !== undefined) return this.#supplied.signer
    const entry = signerOf(this.#stored, this.#opts.now())
    const key = entry === undefined ? undefined : this.#signers.get(entry.kid)
    if (key === undefined) throw notLoaded('signing keys are')
    if (key.kid !== this.#lastSignerKid) {
      if (this.#lastSignerKid !== undefined) this.#log.info({ kid: key.kid, previous: this.#lastSignerKid }, 'signing with a new key')
      this.#lastSignerKid = key.kid
    }
    return key
  }

  /** Keys verifiers must accept now: pending, active and retiring ones. */
  all (): readonly PublishedKey[] {
    if (this.#supplied !== undefined) return [this.#supplied.signer, ...this.#supplied.published]
    const published: PublishedKey[] = []
    for (const status of keyStates(this.#stored, this.#opts.now(), this.#policy.retireAfterMs)) {
      const key = this.#signers.get(status.kid)
      if (status.state !== 'retired' && key !== undefined) published.push(key)
    }
    return published
  }

  /** Every key held, with its state now. */
  states (): KeyringKeyStatus[] {
    const supplied = this.#supplied
    if (supplied !== undefined) {
      return [{ kid: supplied.signer.kid, state: 'active' }, ...supplied.published.map((key) => ({ kid: key.kid, state: 'published' as const }))]
    }
    return keyStates(this.#stored, this.#opts.now(), this.#policy.retireAfterMs)
  }

  /** The secret that authenticates refresh tokens (and device tokens); 503 until loaded. */
  refreshTokenSecret (): string {
    if (this.#refreshSecret === undefined) throw notLoaded('keys are')
    return this.#refreshSecret
  }

  /**
   * Reads the generated keyring from Redis, adds a key when the schedule says
   * so and deletes retired ones. Runs every KEYRING_RELOAD_INTERVAL; tests
   * that move the clock call it. Rejects when Redis fails; the view is kept.
   * Concurrent callers (the timer, a test, a rotation) share one run.
   */
  async sync (): Promise<void> {
    this.#syncing ??= this.#syncOnce().finally(() => { this.#syncing = undefined })
    await this.#syncing
  }

  /** Adds a pending key now, as `baton-admin keys rotate` does; throws with operator-supplied keys. */
  async rotate (): Promise<RotationResult> {
    if (this.#supplied !== undefined) {
      throw new Error('signing keys are supplied by the operator (SIGNING_KEY / SIGNING_KEY_FILE); rotate them there')
    }
    return this.#afterRotation(await storage(rotateSigningKey(this.#redis, this.#opts.signingKeysKey, this.#policy, 'operator', this.#opts.now())))
  }

  /** Loads the keys, then keeps them fresh: reloads on a timer and, with a changes channel, on every announced change. */
  async start (): Promise<void> {
    await this.#connected()
    if (this.#supplied === undefined && this.#opts.changesChannel !== undefined) this.#listenForChanges(this.#opts.changesChannel)
    await this.#tick()
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#subscriber?.disconnect()
  }

  #apply (json: string): void {
    if (json === this.#storedJson) return
    const next = parseKeyring(json)
    if (next.length === 0) throw new Error('the stored keyring is empty')
    for (const entry of next) {
      if (this.#signers.has(entry.kid)) continue
      const key = signingKeyFromPem(entry.pem)
      if (key.kid !== entry.kid) throw new Error(`the stored key ${entry.kid} does not match its kid`)
      this.#signers.set(entry.kid, key)
    }
    for (const kid of this.#signers.keys()) {
      if (!next.some((entry) => entry.kid === kid)) this.#signers.delete(kid)
    }
    this.#stored = next
    this.#storedJson = json
    this.#log.info({ keys: keyStates(this.#stored, this.#opts.now(), this.#policy.retireAfterMs).map(({ kid, state }) => ({ kid, state })) }, 'signing keys loaded')
  }

  #afterRotation (result: RotationResult): RotationResult {
    this.#apply(result.json)
    if (result.key !== undefined) {
      this.#log.info({ kid: result.key.kid, activate_at: new Date(result.key.activate_at).toISOString(), status: result.status }, 'signing key added')
    }
    return result
  }

  async #loadKeyring (): Promise<void> {
    const key = this.#opts.signingKeysKey
    const json = await storage(this.#redis.get(key))
    if (json !== null) {
      this.#apply(json)
    } else if (this.#storedJson !== undefined) {
      // Redis lost the keyring (restarted without persistence, flushed): put back
      // what we hold, so tokens already signed keep verifying on every instance.
      this.#log.warn('the stored keyring is gone; restoring it from memory')
      await storage(this.#redis.set(key, this.#storedJson, 'NX'))
      const restored = await storage(this.#redis.get(key))
      if (restored !== null) this.#apply(restored)
    } else {
      this.#afterRotation(await storage(rotateSigningKey(this.#redis, key, this.#policy, 'init', this.#opts.now())))
    }
  }

  async #syncOnce (): Promise<void> {
    if (this.#opts.refreshTokenSecret === undefined) {
      // Read on every sync: should Redis lose it, the one held goes back before another instance makes up its own.
      const held = this.#refreshSecret
      this.#refreshSecret = await loadRefreshSecret(this.#redis, this.#opts.refreshTokenSecretKey, held)
      if (held !== undefined && this.#refreshSecret !== held) this.#log.warn('the stored refresh-token secret changed; refresh tokens issued under the old one are refused')
    }
    if (this.#supplied !== undefined) return
    await this.#loadKeyring()
    const now = this.#opts.now()
    const policy = this.#policy
    if (rotationDue(this.#stored, now, policy.rotationIntervalMs)) {
      // The script checks again: of several instances due at once, one adds the key.
      const { status } = this.#afterRotation(await storage(rotateSigningKey(this.#redis, this.#opts.signingKeysKey, policy, 'scheduled', now)))
      if (status === 'full' && !this.#warnedFull) {
        this.#log.warn({ maxKeys: policy.maxKeys }, 'scheduled key rotation skipped: the keyring is full until a key retires (KEY_ROTATION_INTERVAL shorter than ACCESS_TOKEN_TTL?)')
      }
      this.#warnedFull = status === 'full'
    }
    if (keyStates(this.#stored, now, policy.retireAfterMs).some((key) => key.state === 'retired')) {
      const { removed, json } = await storage(pruneSigningKeys(this.#redis, this.#opts.signingKeysKey, policy, now))
      if (json !== null) this.#apply(json)
      if (removed > 0) this.#log.info({ removed }, 'retired signing keys deleted')
    }
  }

  async #tick (): Promise<void> {
    try {
      await this.sync()
    } catch (error) {
      // Redis away: say so now and then, keep the keys already loaded.
      if (!this.ready() || Date.now() - this.#lastFailureLog > 10_000) {
        this.#lastFailureLog = Date.now()
        this.#log.warn({ err: { message: (error as Error).message } }, this.ready() ? 'signing keys not reloaded; keeping the loaded ones' : 'keys not loaded yet; retrying')
      }
    }
    if (this.#closed || (this.#supplied !== undefined && this.ready())) return
    // Until the first load, retry every second whatever the reload interval.
    const reload = this.#policy.reloadIntervalMs
    this.#timer = setTimeout(() => { void this.#tick() }, this.ready() ? reload : Math.min(1000, reload))
    this.#timer.unref()
  }

  // The connection is opened, not awaited, as the app registers; a start that
  // reads before it is up would stay unready for a retry interval for nothing.
  async #connected (): Promise<void> {
    const client = this.#redis
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
  #listenForChanges (channel: string): void {
    const client = this.#redis.duplicate()
    this.#subscriber = client
    let subscribed = false
    client.on('error', () => {})
    // ioredis subscribes again by itself after a reconnect; this covers a first connect that failed.
    client.on('ready', () => {
      if (!subscribed) client.subscribe(channel).then(() => { subscribed = true }, () => {})
    })
    client.on('message', (from: string) => {
      if (from !== channel || this.#closed) return
      // A reload already under way may have read the keyring before the change: reload after it.
      void (async () => {
        await this.#syncing?.catch(() => {})
        try {
          await this.sync()
          this.#log.info({ keys: this.states().map(({ kid, state }) => ({ kid, state })) }, 'signing keys reloaded on an operator\'s change')
        } catch (error) {
          this.#log.warn({ err: { message: (error as Error).message } }, 'signing keys not reloaded after an operator\'s change; the next reload retries')
        }
      })()
    })
    client.connect().catch(() => {})
  }
}
