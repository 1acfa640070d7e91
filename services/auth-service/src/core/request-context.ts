import type { Events } from './events.js'

/** Who is asking: recorded on a session and checked on every refresh. */
export interface Requester {
  clientId: string
  userAgent: string
  ip: string
}

/** A request as the domain sees it: who asks, and where to tell what it did. */
export interface RequestContext extends Requester {
  events: Events
}
