import { BatonClientError, isTransient } from './errors.js'
import { bodyDelivery, cookieDelivery, type RefreshTokenCarrier, type RefreshTokenDelivery, type TokenAnswer } from './delivery.js'
import { MemoryTokenStore, type TokenStore } from './token-store.js'
import { soloCoordinator, tabCoordinator, type SessionEndReason, type TabCoordinator, type TabMessage } from './tabs.js'
import { accessTokenSessionId, formEncode, readAnswer, readTokenAnswer } from './wire.js'
import {
  DpopSigner, IndexedDbKeyStore, isDpopKeyStore, isResourceNonceChallenge, isTokenEndpointNonceChallenge, MemoryKeyStore, NonceBook,
  type DpopKeyStore, type DpopOption
} from './dpop.js'

/** The options of `createClient`. Only `issuer` is required. */
export interface ClientOptions {
  /** The auth-service's base URL, its `ISSUER`: `https://auth.example.com`. */
  issuer: string
  /** The registered client this app is (default: the built-in first-party client `baton`). */
  clientId?: string
  /** A confidential client's secret, sent with HTTP Basic. Never in a browser: anyone can read a page's code. */
  clientSecret?: string
  /** The scope to ask for at login (default: all the user and client are allowed). */
  scope?: string
  /**
   * `'body'` (default, token mode): the refresh token comes in the answer and
   * is kept by `tokenStore`. `'cookie'`: the auth-service keeps it in an
   * `HttpOnly` cookie; the client sends `credentials: 'include'` and the
   * `X-Baton-Client` header, and never sees a refresh token.
   */
  refreshTokenDelivery?: RefreshTokenDelivery
  /** Token mode: where the refresh token lives (default: in memory, handed from tab to tab). */
  tokenStore?: TokenStore
  /** The `fetch` to use (default: the platform's); tests and proxies wrap it. */
  fetch?: typeof fetch
  /** Refresh this long before the access token expires (default 30 s; at most half its lifetime). */
  refreshSkewMs?: number
  /**
   * How long a refresh whose answer was lost is retried with the same
   * refresh token (default 8 s). Keep it inside the auth-service's
   * `REFRESH_REUSE_GRACE` (10 s by default): a retry after the window is
   * taken for theft and ends the session.
   */
  refreshRetryWindowMs?: number
  /** Longest wait for one answer of the auth-service (default 10 s). */
  timeoutMs?: number
  /**
   * Origins `fetch` may send the access token to, besides the issuer's and,
   * in a browser, the page's own. A request to any other origin is refused
   * rather than leak the token.
   */
  apiOrigins?: string[]
  /**
   * Coordinate with the other tabs (and workers) of this origin: one refresh
   * at a time through the Web Locks API, tokens and logouts passed on through
   * a BroadcastChannel. Default: on in browsers, off in Node, where clients
   * of one process usually act for different users.
   */
  crossTab?: boolean
  /** Name of the lock and channel the tabs share (default: derived from `issuer` and `clientId`). */
  channelName?: string
  /** How long a tab waits for another tab's answer before acting alone (default 250 ms). */
  tabSyncTimeoutMs?: number
  /** Milliseconds since the epoch (default `Date.now`); tests move it. */
  now?: () => number
  /**
   * Sender-constrained tokens (DPoP, RFC 9449): every request to the token
   * endpoint and every `fetch` with the access token carries a proof signed
   * by a key pair only this client holds, and the tokens it gets are bound
   * to that key. `true` keeps the key in the default place: in a browser a
   * non-extractable key in IndexedDB, shared by the tabs and kept across
   * reloads; in Node the `tokenStore` when it can keep keys
   * (`FileTokenStore` can), else memory. `{ keyStore }` keeps it elsewhere.
   */
  dpop?: DpopOption
}

/** One of the signed-in user's live sessions (`GET /sessions`). */
export interface Session {
  /** The session's id: the `sid` of its access tokens. */
  id: string
  createdAt: string
  lastUsedAt: string
  clientId: string
  userAgent: string
  ip: string
  /** True for the session this client is signed in with. */
  current: boolean
}

/** What the client tells its listeners. */
export interface ClientEvents {
  /** A login, here or in another tab: the access token expires at `expiresAt` (ms since the epoch). */
  'signed-in': { expiresAt: number, fromOtherTab: boolean }
  /** A new access token, refreshed here or handed over by another tab. */
  refreshed: { expiresAt: number, fromOtherTab: boolean }
  /** The session is over, here or in another tab; log in again to go on. */
  'session-ended': { reason: SessionEndReason, description?: string, fromOtherTab: boolean }
}

/** How the access token is presented: `Bearer`, or `DPoP` with a proof of the key it is bound to. */
type TokenScheme = 'Bearer' | 'DPoP'

interface AccessState {
  token: string
  scheme: TokenScheme
  /** Ms since the epoch, by this client's clock: measured from when the request was sent. */
  expiresAt: number
  lifetimeMs: number
}

type Status = 'unknown' | 'signed-in' | 'signed-out'

const DEFAULT_CLIENT_ID = 'baton'
const TOKEN_PATH = 'oauth/token'
const MAX_REFRESH_ATTEMPTS = 4
const FIRST_RETRY_DELAY_MS = 100

function notSignedIn (): BatonClientError {
  return new BatonClientError('not_signed_in', 'not signed in: log in first')
}

function invalidOptions (message: string): BatonClientError {
  return new BatonClientError('invalid_options', message)
}

function nonNegative (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 0) throw invalidOptions(`${name} must be a number of milliseconds, 0 or more`)
  return value
}

/** A page or a worker: places with neighbours to coordinate with. Node is neither. */
function inBrowser (): boolean {
  return 'document' in globalThis || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined'
}

/** A promise fired once by hand. */
function signal (): { promise: Promise<void>, fire: () => void } {
  let fire = (): void => {}
  const promise = new Promise<void>((resolve) => { fire = resolve })
  return { promise, fire }
}

/** Where this client's DPoP key lives and under what name, and the nonces the servers gave it. */
interface DpopSettings {
  keyStore: DpopKeyStore
  keyName: string
  nonces: NonceBook
}

function dpopSettings (options: ClientOptions, keyName: string): DpopSettings | undefined {
  const option = options.dpop
  if (option === undefined || option === false) return undefined
  if (option !== true && (typeof option !== 'object' || option === null)) throw invalidOptions('dpop must be true, false or { keyStore }')
  if ((globalThis as { crypto?: Crypto }).crypto?.subtle === undefined) throw invalidOptions('dpop needs WebCrypto: in a browser, a secure context (https, or http://localhost)')
  const keyStore = (option === true ? undefined : option.keyStore) ??
    (isDpopKeyStore(options.tokenStore) ? options.tokenStore : inBrowser() && 'indexedDB' in globalThis ? new IndexedDbKeyStore() : new MemoryKeyStore())
  if (!isDpopKeyStore(keyStore)) throw invalidOptions('dpop.keyStore must have a dpopKeyPair(name) method')
  return { keyStore, keyName, nonces: new NonceBook() }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A Baton session: log in, call APIs with `fetch`, and let the client keep
 * the access token fresh. Made by `createClient`.
 */
export class BatonClient {
  readonly #base: URL
  readonly #clientId: string
  readonly #clientSecret: string | undefined
  readonly #scope: string | undefined
  readonly #carrier: RefreshTokenCarrier
  readonly #fetch: typeof fetch
  readonly #now: () => number
  readonly #skewMs: number
  readonly #retryWindowMs: number
  readonly #timeoutMs: number
  readonly #syncTimeoutMs: number
  readonly #apiOrigins: ReadonlySet<string>
  readonly #tabs: TabCoordinator
  readonly #listeners = new Map<keyof ClientEvents, Set<(event: never) => void>>()
  readonly #dpop: DpopSettings | undefined
  #signer: Promise<DpopSigner> | undefined

  #state: AccessState | undefined
  #status: Status = 'unknown'
  /** Bumped by every change of state, here or from another tab: what waiters watch. */
  #generation = 0
  #changed = signal()
  #refreshing: Promise<AccessState> | undefined
  #restoring: Promise<boolean> | undefined
  /** Messages from other tabs, handled one after the other. */
  #inbox: Promise<void> = Promise.resolve()

  constructor (options: ClientOptions) {
    let issuer: URL
    try {
      issuer = new URL(options.issuer)
    } catch {
      throw invalidOptions('issuer must be an absolute URL')
    }
    if (issuer.protocol !== 'https:' && issuer.protocol !== 'http:') throw invalidOptions('issuer must be an http or https URL')
    this.#base = new URL(issuer.pathname.endsWith('/') ? issuer.href : `${issuer.href}/`)
    this.#clientId = options.clientId ?? DEFAULT_CLIENT_ID
    this.#clientSecret = options.clientSecret
    this.#scope = options.scope
    const delivery = options.refreshTokenDelivery ?? 'body'
    if (delivery === 'cookie') {
      if (options.tokenStore !== undefined) throw invalidOptions('refreshTokenDelivery \'cookie\' keeps the refresh token out of reach: give no tokenStore')
      if (options.clientSecret !== undefined) throw invalidOptions('refreshTokenDelivery \'cookie\' is for browsers, which cannot keep a clientSecret')
      this.#carrier = cookieDelivery()
    } else if (delivery === 'body') {
      this.#carrier = bodyDelivery(options.tokenStore ?? new MemoryTokenStore())
    } else {
      throw invalidOptions('refreshTokenDelivery must be \'body\' or \'cookie\'')
    }
    // Unbound, a browser's fetch throws "Illegal invocation".
    this.#fetch = options.fetch ?? (async (input, init) => await globalThis.fetch(input, init))
    this.#now = options.now ?? Date.now
    this.#skewMs = nonNegative('refreshSkewMs', options.refreshSkewMs, 30_000)
    this.#retryWindowMs = nonNegative('refreshRetryWindowMs', options.refreshRetryWindowMs, 8_000)
    this.#timeoutMs = nonNegative('timeoutMs', options.timeoutMs, 10_000)
    this.#syncTimeoutMs = nonNegative('tabSyncTimeoutMs', options.tabSyncTimeoutMs, 250)

    const origins = new Set([issuer.origin])
    const page = (globalThis as { location?: { origin?: string } }).location?.origin
    if (typeof page === 'string' && page !== 'null') origins.add(page)
    for (const origin of options.apiOrigins ?? []) {
      try {
        origins.add(new URL(origin).origin)
      } catch {
        throw invalidOptions(`apiOrigins: ${origin} is not a URL`)
      }
    }
    this.#apiOrigins = origins

    this.#dpop = dpopSettings(options, `baton:${this.#base.href}:${this.#clientId}`)

    const channel = options.channelName ?? `baton:${this.#base.href}:${this.#clientId}`
    this.#tabs = (options.crossTab ?? inBrowser())
      ? tabCoordinator(channel, (message) => { this.#inbox = this.#inbox.then(async () => { await this.#onTabMessage(message) }).catch(() => {}) })
      : soloCoordinator()
  }

  /** How the refresh token travels: `'body'` (token mode) or `'cookie'`. */
  get refreshTokenDelivery (): RefreshTokenDelivery {
    return this.#carrier.delivery
  }

  /** True while this client holds a session's access token. */
  get signedIn (): boolean {
    return this.#status === 'signed-in' && this.#state !== undefined
  }

  /** When the current access token expires, in ms since the epoch; undefined when signed out. */
  get expiresAt (): number | undefined {
    return this.#state?.expiresAt
  }

  /** How the access token is sent: `'DPoP'` when it is bound to this client's key, `'Bearer'` otherwise; undefined when signed out. */
  get tokenType (): TokenScheme | undefined {
    return this.#state?.scheme
  }

  /** The current session's id (the `sid` the sessions list names it by); undefined when signed out. */
  get sessionId (): string | undefined {
    return this.#state === undefined ? undefined : accessTokenSessionId(this.#state.token)
  }

  /**
   * Listens for `signed-in`, `refreshed` and `session-ended`; returns the
   * function that stops listening.
   *
   * @example
   * client.on('session-ended', ({ reason }) => { showLogin(reason) })
   */
  on<K extends keyof ClientEvents> (type: K, listener: (event: ClientEvents[K]) => void): () => void {
    let listeners = this.#listeners.get(type)
    if (listeners === undefined) this.#listeners.set(type, listeners = new Set())
    const entry = listener as (event: never) => void
    listeners.add(entry)
    return () => { listeners.delete(entry) }
  }

  /**
   * Logs in with the password grant and starts a session. Rejects with
   * `invalid_grant` for a wrong username or password, `slow_down` (with
   * `retryAfter`) when rate limited.
   *
   * @example
   * await client.login('ada', 'correct horse battery staple')
   */
  async login (username: string, password: string, options: { scope?: string } = {}): Promise<void> {
    // Under the lock: a login must not cross a refresh of the previous session in another tab.
    await this.#tabs.exclusive(async () => {
      const parameters: Record<string, string> = { grant_type: 'password', username, password, ...await this.#carrier.loginParameters() }
      const scope = options.scope ?? this.#scope
      if (scope !== undefined) parameters.scope = scope
      const { answer, sentAt } = await this.#tokenRequest(parameters, false)
      await this.#signIn(answer, sentAt, 'login')
    })
  }

  /**
   * Finds the session this client can continue, without a login: another
   * tab's, or the one its token store (or, in cookie mode, the browser's
   * cookie) holds. Resolves to whether there is one.
   */
  async restore (): Promise<boolean> {
    if (this.#state !== undefined) return true
    if (this.#status === 'signed-out') return false
    this.#restoring ??= this.#restore().finally(() => { this.#restoring = undefined })
    return await this.#restoring
  }

  /**
   * `fetch` with the access token: refreshes it first when it is about to
   * expire, and once more, then sends the request again, when the API
   * answers 401. Rejects with `not_signed_in` without a session, and with
   * `invalid_grant` when the session turns out to be over.
   *
   * @example
   * const me = await (await client.fetch('https://api.example.com/me')).json()
   */
  async fetch (input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init)
    if (!this.#apiOrigins.has(new URL(request.url).origin)) {
      throw new BatonClientError('origin_not_allowed', `${new URL(request.url).origin} is not in apiOrigins: the access token is not sent there`)
    }
    const used = await this.#validState()
    const response = await this.#authorized(request, used)
    if (response.status !== 401) return response
    const next = await this.#refreshAfter(used)
    await response.body?.cancel().catch(() => {})
    return await this.#authorized(request, next)
  }

  /** A valid access token, refreshed first if it is about to expire: for what `fetch` does not cover (a WebSocket, a header of your own). */
  async accessToken (): Promise<string> {
    return (await this.#validState()).token
  }

  /**
   * This client's DPoP key, as far as it may be seen: the thumbprint that a
   * bound token's `cnf.jkt` names, and whether the private key can be read
   * out (never, for a key the client made in a browser). Undefined without
   * `dpop`.
   */
  async dpopKey (): Promise<{ thumbprint: string, extractable: boolean } | undefined> {
    if (this.#dpop === undefined) return undefined
    const signer = await this.#dpopSigner(this.#dpop)
    return { thumbprint: await signer.thumbprint(), extractable: signer.extractable }
  }

  /**
   * The headers that authorize one request the app sends by other means
   * than `fetch` (a WebSocket upgrade, another HTTP library):
   * `authorization`, and for a DPoP-bound token a `dpop` proof made for
   * exactly this method and URL. Ask anew for every request: a proof is
   * good for one request only.
   *
   * @example
   * const headers = await client.authorizationHeaders('GET', 'https://api.example.com/me')
   */
  async authorizationHeaders (method: string, url: string | URL): Promise<Record<string, string>> {
    const target = new URL(url)
    if (!this.#apiOrigins.has(target.origin)) throw new BatonClientError('origin_not_allowed', `${target.origin} is not in apiOrigins: the access token is not sent there`)
    const state = await this.#validState()
    return {
      authorization: `${state.scheme} ${state.token}`,
      ...(state.scheme === 'DPoP' ? { dpop: await this.#proof(method, target, state.token) } : {})
    }
  }

  /**
   * Ends this session at the auth-service (`POST /oauth/revoke`) and in every
   * tab. The client forgets the session even when the auth-service could not
   * be told; the promise then rejects with the reason.
   */
  async logout (): Promise<void> {
    let failure: unknown
    try {
      const parameters = this.#status === 'signed-out' ? undefined : await this.#carrier.revocationParameters()
      if (parameters !== undefined) await this.#post('oauth/revoke', parameters, true)
    } catch (error) {
      failure = error
    }
    await this.#end('logout', undefined, false)
    if (failure !== undefined) throw failure
  }

  /** Ends every session of the user, on every device (`DELETE /sessions`), and this one in every tab. */
  async logoutEverywhere (): Promise<void> {
    const response = await this.fetch(new URL('sessions', this.#base), this.#endingInit())
    await readAnswer(response)
    await this.#end('logout_everywhere', undefined, false)
  }

  /** The user's live sessions, on every device (`GET /sessions`). */
  async sessions (): Promise<Session[]> {
    const response = await this.fetch(new URL('sessions', this.#base), { headers: { accept: 'application/json' } })
    const body = await readAnswer(response) as { sessions?: unknown }
    if (!Array.isArray(body.sessions)) throw new BatonClientError('invalid_response', 'the sessions answer has no sessions list', { status: response.status })
    return body.sessions.map((session: Record<string, unknown>) => ({
      id: String(session.id),
      createdAt: String(session.created_at),
      lastUsedAt: String(session.last_used_at),
      clientId: String(session.client_id),
      userAgent: String(session.user_agent),
      ip: String(session.ip),
      current: session.current === true
    }))
  }

  /** Ends one of the user's sessions (`DELETE /sessions/:id`); this one's own id signs out every tab. */
  async endSession (id: string): Promise<void> {
    const current = this.sessionId
    const response = await this.fetch(new URL(`sessions/${encodeURIComponent(id)}`, this.#base), this.#endingInit())
    await readAnswer(response)
    if (id === current) await this.#end('session_ended', undefined, false)
  }

  /** Stops listening to other tabs. The session is left as it is. */
  close (): void {
    this.#tabs.close()
  }

  #emit<K extends keyof ClientEvents> (type: K, event: ClientEvents[K]): void {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        (listener as (event: ClientEvents[K]) => void)(event)
      } catch (error) {
        // A listener's failure is the app's bug, reported as such; the client's state is already settled.
        setTimeout(() => { throw error })
      }
    }
  }

  #setState (state: AccessState | undefined, status: Status): void {
    this.#state = state
    this.#status = status
    this.#generation++
    const changed = this.#changed
    this.#changed = signal()
    changed.fire()
  }

  /** Resolves once the state changed after `generation`, or after `timeoutMs`. */
  async #changeSince (generation: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.#generation === generation) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) return
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([this.#changed.promise, new Promise((resolve) => { timer = setTimeout(resolve, remaining) })])
      clearTimeout(timer)
    }
  }

  #due (state: AccessState): boolean {
    return this.#now() >= state.expiresAt - Math.min(this.#skewMs, state.lifetimeMs / 2)
  }

  /**
   * A request that may end this session: in cookie mode it carries the
   * browser's credentials, so that the auth-service's answer can clear the
   * refresh-token cookie (a cross-origin answer sets no cookie otherwise).
   */
  #endingInit (): RequestInit {
    return { method: 'DELETE', credentials: this.#carrier.requestInit.credentials }
  }

  /**
   * Sends `request` (a clone: the caller's stays unspent for a retry) with
   * the access token, and with a DPoP-bound one its proof; once more with a
   * new proof when the API asks for one with its nonce.
   */
  async #authorized (request: Request, state: AccessState): Promise<Response> {
    for (let challenged = false; ; challenged = true) {
      const headers = new Headers(request.headers)
      headers.set('authorization', `${state.scheme} ${state.token}`)
      if (state.scheme !== 'DPoP') return await this.#fetch(request.clone(), { headers })
      headers.set('dpop', await this.#proof(request.method, request.url, state.token))
      const response = await this.#fetch(request.clone(), { headers })
      this.#dpop?.nonces.remember(request.url, response)
      if (challenged || !isResourceNonceChallenge(response)) return response
      await response.body?.cancel().catch(() => {})
    }
  }

  #dpopSigner (dpop: DpopSettings): Promise<DpopSigner> {
    if (this.#signer === undefined) {
      const signer = this.#signer = dpop.keyStore.dpopKeyPair(dpop.keyName).then((pair) => new DpopSigner(pair), (cause: unknown) => {
        if (cause instanceof BatonClientError) throw cause
        throw new BatonClientError('dpop_key_unavailable', `the DPoP key could not be loaded or made (${String(cause)})`, { cause })
      })
      // A key store that failed once (IndexedDB blocked, say) is asked again next time.
      signer.catch(() => { if (this.#signer === signer) this.#signer = undefined })
    }
    return this.#signer
  }

  /** A new DPoP proof for one request (and, for an API, the access token it goes with), with the latest nonce of its origin. */
  async #proof (method: string, url: string | URL, accessToken?: string): Promise<string> {
    const dpop = this.#dpop
    if (dpop === undefined) throw invalidOptions('this client was made without dpop')
    const nonce = dpop.nonces.get(url)
    return await (await this.#dpopSigner(dpop)).proof({
      method, url, issuedAt: Math.floor(this.#now() / 1000), ...(accessToken === undefined ? {} : { accessToken }), ...(nonce === undefined ? {} : { nonce })
    })
  }

  /** An access token to send now: the current one, or a refreshed one when it is due. */
  async #validState (): Promise<AccessState> {
    let state = this.#state
    if (state === undefined) {
      await this.restore()
      state = this.#state
      if (state === undefined) throw notSignedIn()
    }
    if (!this.#due(state)) return state
    try {
      return await this.#refreshAfter(state)
    } catch (error) {
      // Refreshing early is a courtesy: while the token is still good, an auth-service out of reach need not fail the call.
      if (isTransient(error) && this.#state === state && this.#now() < state.expiresAt) return state
      throw error
    }
  }

  async #restore (): Promise<boolean> {
    if (this.#tabs.shared) {
      const generation = this.#generation
      this.#tabs.post({ v: 1, type: 'sync-request' })
      await this.#changeSince(generation, this.#syncTimeoutMs)
      if (this.#state !== undefined) return true
      if (this.#status === 'signed-out') return false
    }
    try {
      await this.#refreshAfter(undefined)
      return true
    } catch (error) {
      if (error instanceof BatonClientError && (error.code === 'not_signed_in' || error.code === 'invalid_grant')) return false
      throw error
    }
  }

  /**
   * A fresh access state, replacing `seen`: joins the refresh in flight in
   * this tab (single flight), and answers at once if another caller already
   * replaced `seen`.
   */
  async #refreshAfter (seen: AccessState | undefined): Promise<AccessState> {
    if (this.#state !== undefined && this.#state !== seen) return this.#state
    this.#refreshing ??= this.#coordinatedRefresh().finally(() => { this.#refreshing = undefined })
    return await this.#refreshing
  }

  async #coordinatedRefresh (): Promise<AccessState> {
    const generation = this.#generation
    return await this.#tabs.exclusive(async (contended) => {
      // The tab that held the lock posted its outcome before letting go; the message may still be on its way.
      if (contended) await this.#changeSince(generation, this.#syncTimeoutMs)
      if (this.#generation !== generation) {
        if (this.#state !== undefined) return this.#state
        if (this.#status === 'signed-out') throw notSignedIn()
      }
      return await this.#refreshNow()
    })
  }

  async #refreshNow (): Promise<AccessState> {
    const parameters = await this.#carrier.refreshParameters()
    if (parameters === undefined) {
      if (this.#status === 'unknown') this.#setState(undefined, 'signed-out')
      throw notSignedIn()
    }
    const generation = this.#generation
    try {
      const { answer, sentAt } = await this.#tokenRequest({ grant_type: 'refresh_token', ...parameters }, true)
      // A logout (here or in another tab) while the request was out: its answer belongs to a session that is over.
      if (this.#status === 'signed-out' && this.#generation !== generation) throw notSignedIn()
      return await this.#signIn(answer, sentAt, 'refresh')
    } catch (error) {
      if (!(error instanceof BatonClientError) || error.code !== 'invalid_grant') throw error
      // Another tab moved the session on while this request was out (and spent the token this one sent): its answer stands.
      if (this.#generation !== generation && this.#state !== undefined) return this.#state
      await this.#end('invalid_grant', error.message, false)
      throw error
    }
  }

  async #signIn (answer: TokenAnswer, sentAt: number, reason: 'login' | 'refresh'): Promise<AccessState> {
    const lifetimeMs = answer.expires_in * 1000
    // A DPoP token only when this client asked for one: an auth-service without DPoP answers Bearer, and Bearer it is.
    const scheme: TokenScheme = this.#dpop !== undefined && answer.token_type.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer'
    const state: AccessState = { token: answer.access_token, scheme, expiresAt: sentAt + lifetimeMs, lifetimeMs }
    // Kept before anyone can see the new state: a refresh that follows must send the new refresh token.
    await this.#carrier.keep(answer)
    this.#setState(state, 'signed-in')
    await this.#postTokens(reason)
    this.#emit(reason === 'login' ? 'signed-in' : 'refreshed', { expiresAt: state.expiresAt, fromOtherTab: false })
    return state
  }

  async #postTokens (reason: 'login' | 'refresh' | 'sync'): Promise<void> {
    const state = this.#state
    if (!this.#tabs.shared || state === undefined) return
    const refreshToken = await this.#carrier.handOff()
    this.#tabs.post({
      v: 1, type: 'tokens', reason, accessToken: state.token, expiresAt: state.expiresAt, lifetimeMs: state.lifetimeMs,
      ...(state.scheme === 'DPoP' ? { tokenType: 'DPoP' } : {}),
      ...(refreshToken === undefined ? {} : { refreshToken })
    })
  }

  /** The session is over: forget it here, tell the other tabs (unless they told this one), and the listeners. */
  async #end (reason: SessionEndReason, description: string | undefined, fromOtherTab: boolean): Promise<void> {
    const wasSignedIn = this.#status === 'signed-in'
    this.#setState(undefined, 'signed-out')
    await this.#carrier.forget()
    // A refresh token that failed a restore says nothing of other tabs' sessions; a logout speaks for all.
    if (!fromOtherTab && (wasSignedIn || reason !== 'invalid_grant')) {
      this.#tabs.post({ v: 1, type: 'ended', reason, ...(description === undefined ? {} : { description }) })
    }
    if (wasSignedIn) this.#emit('session-ended', { reason, ...(description === undefined ? {} : { description }), fromOtherTab })
  }

  async #onTabMessage (message: TabMessage): Promise<void> {
    switch (message.type) {
      case 'sync-request':
        if (this.#status === 'signed-in') await this.#postTokens('sync')
        return
      case 'ended':
        if (this.#status !== 'signed-out') await this.#end(message.reason, message.description, true)
        return
      case 'tokens': {
        const current = this.#state
        // A signed-out tab follows only a new login: a late refresh of the old session must not sign it back in.
        const adopt = message.reason === 'login' || this.#status === 'unknown' ||
          (this.#status === 'signed-in' && (current === undefined || message.expiresAt > current.expiresAt))
        if (!adopt) return
        const wasSignedIn = this.#status === 'signed-in'
        await this.#carrier.takeOver(message.refreshToken)
        // Every tab of the app signs with the one key the store keeps, so another tab's DPoP token is this tab's too.
        const scheme: TokenScheme = message.tokenType === 'DPoP' ? 'DPoP' : 'Bearer'
        this.#setState({ token: message.accessToken, scheme, expiresAt: message.expiresAt, lifetimeMs: message.lifetimeMs }, 'signed-in')
        this.#emit(wasSignedIn && message.reason !== 'login' ? 'refreshed' : 'signed-in', { expiresAt: message.expiresAt, fromOtherTab: true })
      }
    }
  }

  async #tokenRequest (parameters: Record<string, string>, retryLost: boolean): Promise<{ answer: TokenAnswer, sentAt: number }> {
    const sentAt = this.#now()
    const answer = readTokenAnswer(await this.#post(TOKEN_PATH, parameters, retryLost))
    return { answer, sentAt }
  }

  /**
   * POSTs a form to the auth-service. With `retryLost`, a request whose
   * answer never came (or came as a 5xx, which changed nothing) is sent
   * again, identical, within the retry window: for a refresh, the
   * auth-service's grace window then answers the successor it already made.
   */
  async #post (path: string, parameters: Record<string, string>, retryLost: boolean): Promise<unknown> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
      ...this.#carrier.requestInit.headers
    }
    const body: Record<string, string> = { ...parameters }
    if (this.#clientSecret === undefined) {
      body.client_id = this.#clientId
    } else {
      headers.authorization = `Basic ${btoa(`${formEncode(this.#clientId)}:${formEncode(this.#clientSecret)}`)}`
    }
    const form = new URLSearchParams(body).toString()
    const url = new URL(path, this.#base)
    // Proofs go to the token endpoint only: they bind what it issues; revocation takes the token as it is.
    const proven = this.#dpop !== undefined && path === TOKEN_PATH
    let nonceRetried = false
    const started = this.#now()
    for (let attempt = 1; ; attempt++) {
      const remaining = retryLost ? this.#retryWindowMs - (this.#now() - started) : this.#timeoutMs
      const init: RequestInit = {
        method: 'POST',
        // A new proof for every attempt, the retry of a lost answer too: the auth-service takes a proof once (its jti).
        headers: proven ? { ...headers, dpop: await this.#proof('POST', url) } : headers,
        body: form,
        credentials: this.#carrier.requestInit.credentials,
        signal: AbortSignal.timeout(Math.max(1000, Math.min(this.#timeoutMs, remaining)))
      }
      let response: Response
      try {
        response = await this.#fetch(url, init)
      } catch (cause) {
        if (retryLost && await this.#mayRetry(attempt, started)) continue
        throw new BatonClientError('network_error', `the auth-service could not be reached, or its answer was lost (${String(cause)})`, { cause })
      }
      if (proven) this.#dpop?.nonces.remember(url, response)
      if (proven && !nonceRetried && await isTokenEndpointNonceChallenge(response)) {
        // Nothing was issued: the auth-service only wants a proof with its nonce. Not an attempt of the lost-answer retries.
        nonceRetried = true
        attempt--
        await response.body?.cancel().catch(() => {})
        continue
      }
      if (retryLost && response.status >= 500 && await this.#mayRetry(attempt, started)) {
        await response.body?.cancel().catch(() => {})
        continue
      }
      return await readAnswer(response)
    }
  }

  async #mayRetry (attempt: number, started: number): Promise<boolean> {
    if (attempt >= MAX_REFRESH_ATTEMPTS) return false
    const delay = FIRST_RETRY_DELAY_MS * 2 ** (attempt - 1)
    if (this.#now() - started + delay > this.#retryWindowMs) return false
    await sleep(delay)
    return true
  }
}

/**
 * Makes a client for one auth-service.
 *
 * @example
 * import { createClient } from '@baton/client'
 *
 * const baton = createClient({ issuer: 'https://auth.example.com', apiOrigins: ['https://api.example.com'] })
 * baton.on('session-ended', () => { location.assign('/login') })
 * await baton.login('ada', 'correct horse battery staple')
 * const me = await (await baton.fetch('https://api.example.com/me')).json()
 */
export function createClient (options: ClientOptions): BatonClient {
  return new BatonClient(options)
}
