import { revocationStreamKey } from '@baton/tokens'

/**
 * Every Redis key the auth-service writes is named here. Keys that one Lua
 * script touches share the hash tag `{<user id>}`, so on Redis Cluster they
 * live in one slot and every session change stays a single atomic script.
 * Scripts never build a key name themselves: every key is passed in KEYS.
 *
 *   <p>user:{<uid>}                   hash  the user record, with credential_version (no TTL: accounts persist)
 *   <p>user:{<uid>}:sessions          zset  session id -> expiry (ms); TTL = latest session expiry
 *   <p>user:{<uid>}:session:<sid>     hash  one session (refresh-token family); TTL = min(idle, absolute)
 *   <p>user:{<sub>}:revoked-token:<jti> string a revoked access token; TTL = until the token expires
 *   <p>username:<normalized name>     string the user id, by the RFC 8265 canonical name (older accounts: NFKC lower case)
 *   <p>signing-keys                   string JSON array of generated signing keys {kid, alg, pem, created_at, activate_at};
 *                                           no TTL, bounded: retired keys are deleted, at most MAX_SIGNING_KEYS (core/keys/rotation-policy.ts)
 *   <p>signing-keys:changed           channel (pub/sub, not a key) on which operator commands announce a changed keyring
 *   <p>refresh-token-secret           string secret that authenticates refresh tokens
 *   <p>revocations                    stream the revocation feed for stateless verifiers; trimmed (MINID)
 *                                           to the longest access-token lifetime on every append
 *   <p>dpop-proof:<SHA-256 of jti>    string a DPoP proof the token endpoint accepted (replay check);
 *                                           TTL = until the proof's iat window has passed
 *   <p>rate:{ip:<bucket>}:attempts    string password-grant and registration attempts of one client IP (or IPv6 /64); TTL = 1 minute
 *   <p>rate:{ip:<bucket>}:failures    string failed attempts of that IP; TTL = RATE_LIMIT_FAILURE_WINDOW
 *   <p>rate:{ip:<bucket>}:registrations string registrations of that IP; TTL = RATE_LIMIT_REGISTRATION_WINDOW
 *   <p>rate:{account:<hash>}:failures string failed logins of one username (SHA-256 of its normalized form,
 *                                           whether or not the account exists) from clients it does not know;
 *                                           TTL = RATE_LIMIT_FAILURE_WINDOW
 *   <p>rate:{account:<hash>}:device:<device id>:failures
 *                                     string failed logins of that username from one known device; TTL as above
 *   <p>rate:{account:<hash>}:ip:<bucket>:failures
 *                                     string failed logins of that username from one known address; TTL as above
 *   <p>rate:{account:<hash>}:known-ip:<bucket>
 *                                     string a login of that username from that address succeeded;
 *                                           TTL = RATE_LIMIT_KNOWN_CLIENT_TTL, renewed by each success
 */
export interface RedisKeys {
  user: (uid: string) => string
  sessionIndex: (uid: string) => string
  session: (uid: string, sid: string) => string
  /** Keyed by the token's subject, so it shares a slot with that subject's session. */
  revokedToken: (sub: string, jti: string) => string
  username: (normalized: string) => string
  signingKeys: string
  /** A pub/sub channel: instances reread the keyring when a command says it changed. */
  signingKeysChanged: string
  refreshTokenSecret: string
  /** The revocation feed: a slot of its own on Redis Cluster, written after each revocation's script. */
  revocations: string
  /** One key per accepted DPoP proof: a single SET NX, so no slot to share. */
  dpopProof: (jtiHash: string) => string
  /** Both counters of one client IP bucket share a hash tag: one script checks and counts them. */
  ipAttempts: (bucket: string) => string
  ipFailures: (bucket: string) => string
  ipRegistrations: (bucket: string) => string
  /** An account's counters and known addresses share its hash tag: one script picks the budget and counts. */
  accountFailures: (usernameHash: string) => string
  deviceFailures: (usernameHash: string, deviceId: string) => string
  addressFailures: (usernameHash: string, bucket: string) => string
  knownAddress: (usernameHash: string, bucket: string) => string
}

export function redisKeys (prefix: string): RedisKeys {
  return {
    user: (uid) => `${prefix}user:{${uid}}`,
    sessionIndex: (uid) => `${prefix}user:{${uid}}:sessions`,
    session: (uid, sid) => `${prefix}user:{${uid}}:session:${sid}`,
    revokedToken: (sub, jti) => `${prefix}user:{${sub}}:revoked-token:${jti}`,
    username: (normalized) => `${prefix}username:${normalized}`,
    signingKeys: `${prefix}signing-keys`,
    signingKeysChanged: `${prefix}signing-keys:changed`,
    refreshTokenSecret: `${prefix}refresh-token-secret`,
    revocations: revocationStreamKey(prefix),
    dpopProof: (jtiHash) => `${prefix}dpop-proof:${jtiHash}`,
    ipAttempts: (bucket) => `${prefix}rate:{ip:${bucket}}:attempts`,
    ipFailures: (bucket) => `${prefix}rate:{ip:${bucket}}:failures`,
    ipRegistrations: (bucket) => `${prefix}rate:{ip:${bucket}}:registrations`,
    accountFailures: (usernameHash) => `${prefix}rate:{account:${usernameHash}}:failures`,
    deviceFailures: (usernameHash, deviceId) => `${prefix}rate:{account:${usernameHash}}:device:${deviceId}:failures`,
    addressFailures: (usernameHash, bucket) => `${prefix}rate:{account:${usernameHash}}:ip:${bucket}:failures`,
    knownAddress: (usernameHash, bucket) => `${prefix}rate:{account:${usernameHash}}:known-ip:${bucket}`
  }
}
