// The revocation-feed follower: needs an ioredis client (ioredis is an
// optional peer dependency, needed only here).
export { RevocationFeed, compareStreamIds } from './revocation-feed.js'
export type { FeedClient, GapReason, RevocationFeedOptions } from './revocation-feed.js'
export { RevocationList, withoutRevokedKeys } from './revocation-list.js'
export type { RevocableClaims } from './revocation-list.js'
