/**
 * The auth-service's domain as a library (`@baton/auth-service/core`), for
 * tools that work beside a running service on the same Redis: the bench
 * seeds sessions and users through it instead of logging in for each.
 *
 * @example
 * const redis = new Redis(url)
 * defineScripts(redis)
 * const sessions = new SessionStore(redis, redisKeys('baton:'), new RefreshTokenCodec(secret), lifetimes, Date.now)
 */
export { SessionStore, type SessionLifetimes, type SessionTokens } from './sessions/session-store.js'
export { RefreshTokenCodec } from './sessions/refresh-token-codec.js'
export { RedisUserStore, type UserRecord, type UserStore } from './accounts/user-store.js'
export { createPasswordHasher, type Argon2Parameters, type PasswordHasher } from './accounts/password-hasher.js'
export { randomId } from './ids.js'
// The stores run their Lua scripts on the client they are given, under these key names.
export { defineScripts } from '../redis/scripts.js'
export { redisKeys, type RedisKeys } from '../redis/keys.js'
