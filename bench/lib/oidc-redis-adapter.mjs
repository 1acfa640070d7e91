// A Redis adapter for node-oidc-provider, after the interface its
// documentation describes (upsert, find, findByUid, findByUserCode, consume,
// destroy, revokeByGrantId), over ioredis. It stays close to what a user of
// oidc-provider would deploy: one key per model instance with its TTL, a
// list per grant of the keys issued under it, writes batched in one MULTI.
// No Lua: the peer is measured as it is commonly run, not as Baton is built.

/** Models whose instances are listed under their grant, so that revoking the grant removes them. */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'])

/** An adapter class bound to `redis` and a key prefix; oidc-provider constructs one per model name. */
export function redisAdapter (redis, prefix = 'oidc:') {
  const grantKey = (grantId) => `${prefix}grant:${grantId}`
  const uidKey = (uid) => `${prefix}uid:${uid}`
  const userCodeKey = (userCode) => `${prefix}userCode:${userCode}`

  return class RedisAdapter {
    constructor (name) {
      this.name = name
    }

    key (id) { return `${prefix}${this.name}:${id}` }

    async upsert (id, payload, expiresIn) {
      const key = this.key(id)
      const multi = redis.multi()
      // A hash, so that consume() can mark it without rewriting the payload.
      multi.hset(key, 'payload', JSON.stringify(payload))
      if (expiresIn) multi.expire(key, expiresIn)
      if (GRANTABLE.has(this.name) && payload.grantId) {
        multi.rpush(grantKey(payload.grantId), key)
        // The list lives as long as its longest-lived member: NX gives a new list a TTL, GT only ever extends it.
        if (expiresIn) {
          multi.expire(grantKey(payload.grantId), expiresIn, 'NX')
          multi.expire(grantKey(payload.grantId), expiresIn, 'GT')
        }
      }
      if (payload.uid) multi.set(uidKey(payload.uid), id, 'EX', expiresIn)
      if (payload.userCode) multi.set(userCodeKey(payload.userCode), id, 'EX', expiresIn)
      await multi.exec()
    }

    async find (id) {
      const stored = await redis.hgetall(this.key(id))
      if (stored.payload === undefined) return undefined
      const payload = JSON.parse(stored.payload)
      if (stored.consumed !== undefined) payload.consumed = Number(stored.consumed)
      return payload
    }

    async findByUid (uid) {
      const id = await redis.get(uidKey(uid))
      return id === null ? undefined : await this.find(id)
    }

    async findByUserCode (userCode) {
      const id = await redis.get(userCodeKey(userCode))
      return id === null ? undefined : await this.find(id)
    }

    async consume (id) {
      await redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000))
    }

    async destroy (id) {
      await redis.del(this.key(id))
    }

    async revokeByGrantId (grantId) {
      const keys = await redis.lrange(grantKey(grantId), 0, -1)
      await redis.del(...keys, grantKey(grantId))
    }
  }
}
