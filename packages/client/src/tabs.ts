/** Why a session ended, as `session-ended` reports it. */
export type SessionEndReason =
  /** `logout()`, here or in another tab */
  | 'logout'
  /** `logoutEverywhere()` */
  | 'logout_everywhere'
  /** `endSession(id)` with this session's own id */
  | 'session_ended'
  /** The auth-service refused the refresh token: the session was ended elsewhere, expired, or was revoked for reuse. */
  | 'invalid_grant'

/**
 * What the tabs of one app tell each other. Never a password; a refresh
 * token only in token mode, where the receiving tab needs it to go on.
 */
export type TabMessage =
  | { v: 1, type: 'tokens', reason: 'login' | 'refresh' | 'sync', accessToken: string, tokenType?: 'DPoP', expiresAt: number, lifetimeMs: number, refreshToken?: string }
  | { v: 1, type: 'ended', reason: SessionEndReason, description?: string }
  | { v: 1, type: 'sync-request' }

/** Keeps the tabs (or workers) of one app to one refresh at a time, and tells each what the others did. */
export interface TabCoordinator {
  /** True when there are other tabs to coordinate with: Web Locks or BroadcastChannel are there and enabled. */
  readonly shared: boolean
  /**
   * Runs `task` while no other tab runs one: Web Locks when the platform has
   * them, else within this tab only. `contended` is true when another tab
   * held the lock first and this one waited.
   */
  exclusive: <T>(task: (contended: boolean) => Promise<T>) => Promise<T>
  post: (message: TabMessage) => void
  close: () => void
}

interface Locks {
  request: (name: string, options: { ifAvailable?: boolean }, callback: (lock: unknown) => Promise<unknown>) => Promise<unknown>
}

function webLocks (): Locks | undefined {
  const navigator = (globalThis as { navigator?: { locks?: Locks } }).navigator
  return typeof navigator?.locks?.request === 'function' ? navigator.locks : undefined
}

function isTabMessage (data: unknown): data is TabMessage {
  if (typeof data !== 'object' || data === null) return false
  const message = data as Partial<TabMessage>
  if (message.v !== 1) return false
  if (message.type === 'tokens') {
    return typeof message.accessToken === 'string' && typeof message.expiresAt === 'number' && typeof message.lifetimeMs === 'number' &&
      (message.refreshToken === undefined || typeof message.refreshToken === 'string') &&
      (message.tokenType === undefined || message.tokenType === 'DPoP')
  }
  return message.type === 'ended' || message.type === 'sync-request'
}

/** One tab, nobody to coordinate with: Node by default, or a platform without Web Locks and BroadcastChannel. */
export function soloCoordinator (): TabCoordinator {
  return { shared: false, exclusive: async (task) => await task(false), post: () => {}, close: () => {} }
}

/**
 * Coordinates through the Web Locks API and a BroadcastChannel named `name`,
 * each where the platform has it (browsers; Node 24 has both, within one
 * process). `onMessage` hears every other tab's messages.
 */
export function tabCoordinator (name: string, onMessage: (message: TabMessage) => void): TabCoordinator {
  const locks = webLocks()
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(name) : undefined
  if (locks === undefined && channel === undefined) return soloCoordinator()
  if (channel !== undefined) {
    channel.onmessage = (event: MessageEvent) => { if (isTabMessage(event.data)) onMessage(event.data) }
    // Node: an open channel would otherwise keep the process alive.
    (channel as { unref?: () => void }).unref?.()
  }
  const lockName = `${name}:refresh`
  return {
    shared: true,
    exclusive: async <T>(task: (contended: boolean) => Promise<T>): Promise<T> => {
      if (locks === undefined) return await task(false)
      let result: { value: T } | undefined
      await locks.request(lockName, { ifAvailable: true }, async (lock) => {
        if (lock !== null) result = { value: await task(false) }
      })
      if (result !== undefined) return result.value
      return await locks.request(lockName, {}, async () => await task(true)) as T
    },
    post: (message) => { channel?.postMessage(message) },
    close: () => { channel?.close() }
  }
}
