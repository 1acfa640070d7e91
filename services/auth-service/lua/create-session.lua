--[[
Starts a session (a refresh-token family) for a user, evicting the user's
least recently used sessions beyond the configured maximum.

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions (zset sid -> expiry ms)
ARGV[1]  sid
ARGV[2]  now (ms)
ARGV[3]  expiry of this first refresh token (ms) = min(now + idle, absolute)
ARGV[4]  absolute expiry of the session (ms)
ARGV[5]  most sessions a user may hold
ARGV[6]  session key prefix <p>user:{uid}:session: (same hash tag, same slot)
ARGV[7]  deadline: Redis time (ms) after which the caller no longer waits; 0: none
ARGV[8…] field, value pairs to store (cur, client_id, scope, username, user_agent, ip)

Returns the ids of the sessions evicted to make room; error STALE (nothing
changed) when run after the deadline.
]]
-- Run after the caller gave up on it (it sat in a paused server's buffer):
-- change nothing, so a request already answered 503 never takes effect.
if tonumber(ARGV[7]) > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[7]) then
    return redis.error_reply('STALE the caller stopped waiting for this command')
  end
end
local sid = ARGV[1]
local now = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local evicted = {}
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]) + 1
if over > 0 then
  evicted = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, old in ipairs(evicted) do
    redis.call('DEL', ARGV[6] .. old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end

local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'last_used_at', ARGV[2], 'exp', ARGV[3], 'abs_exp', ARGV[4], 'gen', '1', unpack(fields))
-- Relative TTLs: Redis expires keys by its own clock, which need not match ours.
redis.call('PEXPIRE', KEYS[1], expiry - now)
redis.call('ZADD', KEYS[2], expiry, sid)
if redis.call('PTTL', KEYS[2]) < expiry - now then
  redis.call('PEXPIRE', KEYS[2], expiry - now)
end
return evicted
