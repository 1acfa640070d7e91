import t from 'tap'
import { decodeRevocationEvent, encodeRevocationEvent } from '@baton/tokens'
import { RevocationList, compareStreamIds, withoutRevokedKeys } from '../src/feed/index.js'

const token = (overrides: Partial<{ sub: string, jti: string, sid: string }> = {}): { sub: string, jti: string, sid?: string } =>
  ({ sub: 'user-1', jti: 'jti-1', sid: 'sid-1', ...overrides })

t.test('a revoked session refuses its tokens, for its subject only', async (t) => {
  const list = new RevocationList(5000)
  t.ok(list.apply({ kind: 'sessions', sub: 'user-1', sids: ['sid-1', 'sid-2'], at: 0, until: 60_000 }, 1000))
  t.ok(list.isRevoked(token()))
  t.ok(list.isRevoked(token({ sid: 'sid-2', jti: 'other' })))
  t.notOk(list.isRevoked(token({ sid: 'sid-3' })), 'another session of the user')
  t.notOk(list.isRevoked(token({ sub: 'user-2' })), 'the same sid under another subject is not this session')
  const { sid: _sid, ...sessionless } = token()
  t.notOk(list.isRevoked(sessionless), 'a token without a session')
  t.equal(list.sessions, 2)
})

t.test('a revoked access token refuses only itself', async (t) => {
  const list = new RevocationList(0)
  list.apply({ kind: 'token', sub: 'user-1', jti: 'jti-1', at: 0, until: 60_000 }, 0)
  t.ok(list.isRevoked(token()))
  t.notOk(list.isRevoked(token({ jti: 'jti-2' })), 'a sibling token of the same session')
  t.notOk(list.isRevoked(token({ sub: 'user-2' })))
  t.equal(list.tokens, 1)
})

t.test('entries last until `until` plus the verifier\'s own skew, then go', async (t) => {
  const list = new RevocationList(5000)
  t.notOk(list.apply({ kind: 'token', sub: 'user-1', jti: 'old', at: 0, until: 10_000 }, 15_000), 'an event that no longer matters is not kept')
  list.apply({ kind: 'token', sub: 'user-1', jti: 'jti-1', at: 0, until: 60_000 }, 0)
  list.apply({ kind: 'sessions', sub: 'user-1', sids: ['sid-1'], at: 0, until: 30_000 }, 0)
  list.apply({ kind: 'sessions', sub: 'user-1', sids: ['sid-1'], at: 20_000, until: 90_000 }, 20_000)
  list.sweep(64_999)
  t.equal(list.tokens, 1)
  t.equal(list.sessions, 1, 'a second event for a session extends it')
  list.sweep(65_000)
  t.equal(list.tokens, 0)
  list.sweep(95_000)
  t.equal(list.sessions, 0)
})

t.test('stream ids order by time, then sequence', async (t) => {
  t.ok(compareStreamIds('1700000000000-0', '1700000000001-0') < 0)
  t.ok(compareStreamIds('1700000000000-10', '1700000000000-9') > 0)
  t.equal(compareStreamIds('5-3', '5-3'), 0)
  t.ok(compareStreamIds('0-0', '1-0') < 0)
})

t.test('a revoked signing key: every kid lookup for it finds nothing until the event expires', async (t) => {
  const event = { kind: 'key' as const, kid: 'leaked-kid', at: 1000, until: 61_000 }
  t.same(decodeRevocationEvent(encodeRevocationEvent(event)), event, 'the feed carries it as it was written')
  t.equal(decodeRevocationEvent(['kind', 'key', 'at', '1', 'until', '2']), undefined, 'a key event needs a kid')
  const list = new RevocationList(5000)
  const asked: string[] = []
  const source = withoutRevokedKeys({ getKey: async (kid) => { asked.push(kid); return `key of ${kid}` }, ready: () => true }, list)
  t.equal(await source.getKey('leaked-kid'), 'key of leaked-kid', 'known until the event arrives')
  t.ok(list.apply(event, 2000))
  t.ok(list.isKeyRevoked('leaked-kid'))
  t.equal(await source.getKey('leaked-kid'), undefined, 'then unknown')
  t.equal(await source.getKey('other-kid'), 'key of other-kid', 'another key is not affected')
  t.same(asked, ['leaked-kid', 'other-kid'], 'a revoked kid costs the key source no lookup (and no key-set fetch)')
  t.notOk(list.isRevoked(token()), 'no session or token entry was made')
  t.equal(list.keys, 1)
  list.sweep(65_999)
  t.equal(list.keys, 1)
  list.sweep(66_000)
  t.equal(list.keys, 0, 'forgotten once every token the key signed has expired, with the skew')
  t.notOk(list.isKeyRevoked('leaked-kid'))
})

t.test('a key source without revoked keys still answers a cached token synchronously, and refuses a revoked kid there too', async (t) => {
  const list = new RevocationList(0)
  const source = withoutRevokedKeys({ getKey: async (kid) => `key of ${kid}`, peekKey: (kid) => `key of ${kid}`, ready: () => true }, list)
  t.equal(source.peekKey?.('leaked-kid'), 'key of leaked-kid', 'peekKey kept: no promise per cached verification')
  t.ok(list.apply({ kind: 'key', kid: 'leaked-kid', at: 0, until: 60_000 }, 1000))
  t.equal(source.peekKey?.('leaked-kid'), undefined, 'a revoked kid is unknown to peekKey as well')
  t.equal(source.peekKey?.('other-kid'), 'key of other-kid')
  t.equal(withoutRevokedKeys({ getKey: async () => undefined, ready: () => true }, list).peekKey, undefined, 'a source without peekKey gets none')
})
