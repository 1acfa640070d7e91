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
  /** RFC 7638 thumbprint of the key of the request's valid DPoP proof; undefined: no proof came. */
  dpopJkt?: string | undefined
}
