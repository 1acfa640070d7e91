--[[
Starts a session (a refresh-token family) for a user, evicting the user's
least recently used sessions beyond the configured maximum.

Every key a script touches must be declared in KEYS (Redis Cluster routes
and checks scripts by them), and the sessions to evict are only known
here: the caller declares the sessions it expects to evict; when eviction
needs one it did not declare, nothing changes and the script names them,
so the caller runs it again with those declared too.

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions (zset sid -> expiry ms)
KEYS[3…] session hashes of the sids in ARGV[8…], in that order (same hash tag, same slot)
ARGV[1]  sid
ARGV[2]  now (ms)
ARGV[3]  expiry of this first refresh token (ms) = min(now + idle, absolute)
ARGV[4]  absolute expiry of the session (ms)
ARGV[5]  most sessions a user may hold
ARGV[6]  deadline: Redis time (ms) after which the caller no longer waits; 0: none
ARGV[7]  number n of declared sids that follow
ARGV[8 … 7+n]  the declared sids
ARGV[8+n …]    field, value pairs to store (cur, client_id, scope, username, user_agent, ip)

Returns {'created', evicted sid…}, or {'undeclared', sid…}: the sessions
eviction needs, when one of them was not declared (nothing changed); error
STALE (nothing changed) when run after the deadline.
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua).
local stale = staleReply(ARGV[6])
if stale then return stale end
local sid = ARGV[1]
local now = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local declaredCount = tonumber(ARGV[7])
local declared = {}
for i = 1, declaredCount do declared[ARGV[7 + i]] = KEYS[2 + i] end

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
for i = 8 + declaredCount, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'last_used_at', ARGV[2], 'exp', ARGV[3], 'abs_exp', ARGV[4], 'gen', '1', unpack(fields))
-- Relative TTLs: Redis expires keys by its own clock, which need not match ours.
redis.call('PEXPIRE', KEYS[1], expiry - now)
redis.call('ZADD', KEYS[2], expiry, sid)
if redis.call('PTTL', KEYS[2]) < expiry - now then
  redis.call('PEXPIRE', KEYS[2], expiry - now)
end
table.insert(evicted, 1, 'created')
return evicted
