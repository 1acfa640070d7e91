--[[
Starts a session (a refresh-token family) for a user, evicting the user's
least recently used sessions beyond the configured maximum.

Every key a script touches must be declared in KEYS (Redis Cluster routes
and checks scripts by them), and the sessions to evict are only known
here: the caller declares the sessions it expects to evict; when eviction
needs one it did not declare, nothing changes and the script names them,
so the caller runs it again with those declared too.

The caller verified the password it read together with the user's
credential version ARGV[8]. A password change or "log out everywhere"
raises the version, in the script that ends the user's sessions: a login
verified before that, and arriving here after it, creates nothing.

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions (zset sid -> expiry ms)
KEYS[3]  user hash        <p>user:{uid} (field credential_version; missing: 0)
KEYS[4…] session hashes of the sids in ARGV[9…], in that order (same hash tag, same slot)
ARGV[1]  sid
ARGV[2]  now (ms)
ARGV[3]  expiry of this first refresh token (ms) = min(now + idle, absolute)
ARGV[4]  absolute expiry of the session (ms)
ARGV[5]  most sessions a user may hold
ARGV[6]  deadline: Redis time (ms) after which the caller no longer waits; 0: none
ARGV[7]  number n of declared sids that follow ARGV[8]
ARGV[8]  the user's credential version the grant was verified at
ARGV[9 … 8+n]  the declared sids
ARGV[9+n …]    field, value pairs to store (cur, client_id, scope, username, user_agent, ip)

Returns {'created', evicted sid…}; {'credential_changed'} when the version
moved on (nothing changed); or {'undeclared', sid…}: the sessions eviction
needs, when one of them was not declared (nothing changed); error STALE
(nothing changed) when run after the deadline.
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua).
local stale = staleReply(ARGV[6])
if stale then return stale end
local sid = ARGV[1]
local now = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local declaredCount = tonumber(ARGV[7])
-- Checked here, not when the password was read: argon2 took milliseconds in between.
if (tonumber(redis.call('HGET', KEYS[3], 'credential_version')) or 0) ~= tonumber(ARGV[8]) then
  return {'credential_changed'}
end
local declared = {}
for i = 1, declaredCount do declared[ARGV[8 + i]] = KEYS[3 + i] end

-- Expired entries are dropped below; only live sessions count against the maximum.
local live = '(' .. ARGV[2]
local over = redis.call('ZCOUNT', KEYS[2], live, '+inf') - tonumber(ARGV[5]) + 1
local evicted = {}
if over > 0 then
  evicted = redis.call('ZRANGE', KEYS[2], live, '+inf', 'BYSCORE', 'LIMIT', 0, over)
  for _, old in ipairs(evicted) do
    if not declared[old] then
      table.insert(evicted, 1, 'undeclared')
      return evicted
    end
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for _, old in ipairs(evicted) do
  redis.call('DEL', declared[old])
  redis.call('ZREM', KEYS[2], old)
end

local fields = {}
for i = 9 + declaredCount, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'last_used_at', ARGV[2], 'exp', ARGV[3], 'abs_exp', ARGV[4], 'gen', '1', unpack(fields))
-- Relative TTLs: Redis expires keys by its own clock, which need not match ours.
redis.call('PEXPIRE', KEYS[1], expiry - now)
redis.call('ZADD', KEYS[2], expiry, sid)
if redis.call('PTTL', KEYS[2]) < expiry - now then
  redis.call('PEXPIRE', KEYS[2], expiry - now)
end
table.insert(evicted, 1, 'created')
return evicted
