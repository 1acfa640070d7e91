/**
 * The revocation feed's wire format, shared by the auth-service that writes
 * it and the verifiers that read it: one Redis Stream entry per event, as
 * flat field/value pairs so `XRANGE` shows them plainly.
 *
 *   kind   'sessions': every access token of these sessions is refused
 *          'token':    the one access token with this jti is refused
 *          'key':      every access token signed with this key (its `kid`
 *                      header) is refused: the key leaked
 *   sub    whose sessions or token (a verifier also compares it; not for 'key')
 *   sids   space-separated session ids ('sessions')
 *   jti    the token's id ('token')
 *   kid    the signing key's id ('key')
 *   at     when it was revoked (ms since the epoch, the issuer's clock)
 *   until  when every affected token has expired anyway (ms, the issuer's
 *          clock, its CLOCK_SKEW included): a verifier may forget the event then
 *
 * The stream adds `prev`, the id of the entry before, to detect gaps.
 */
export type RevocationEvent =
  | { kind: 'sessions', sub: string, sids: readonly string[], at: number, until: number }
  | { kind: 'token', sub: string, jti: string, at: number, until: number }
  | { kind: 'key', kid: string, at: number, until: number }

/** The field/value pairs that stand for an event in the stream. */
export function encodeRevocationEvent (event: RevocationEvent): string[] {
  const times = ['at', String(event.at), 'until', String(event.until)]
  if (event.kind === 'key') return ['kind', event.kind, 'kid', event.kid, ...times]
  const target = event.kind === 'sessions' ? ['sids', event.sids.join(' ')] : ['jti', event.jti]
  return ['kind', event.kind, 'sub', event.sub, ...target, ...times]
}

const ID = /^[\x21-\x7e]{1,256}$/

/** An entry's fields as an event, or undefined when they are not one (another writer, a newer format). */
export function decodeRevocationEvent (fields: readonly string[]): RevocationEvent | undefined {
  const values = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i]!, fields[i + 1]!)
  const sub = values.get('sub')
  const at = Number(values.get('at'))
  const until = Number(values.get('until'))
  const kind = values.get('kind')
  if (!Number.isSafeInteger(at) || !Number.isSafeInteger(until)) return undefined
  if (kind === 'key') {
    const kid = values.get('kid')
    return kid === undefined || !ID.test(kid) ? undefined : { kind, kid, at, until }
  }
  if (sub === undefined || !ID.test(sub)) return undefined
  if (kind === 'sessions') {
    const sids = (values.get('sids') ?? '').split(' ').filter((sid) => sid !== '')
    if (sids.length === 0 || !sids.every((sid) => ID.test(sid))) return undefined
    return { kind, sub, sids, at, until }
  }
  if (kind === 'token') {
    const jti = values.get('jti')
    if (jti === undefined || !ID.test(jti)) return undefined
    return { kind, sub, jti, at, until }
  }
  return undefined
}

/** The stream's key: one per key prefix, outside every user's hash tag. */
export function revocationStreamKey (prefix: string): string {
  return `${prefix}revocations`
}
