--[[
Prepended to every script in lua/ when it is loaded (src/redis/scripts.ts):
Redis scripts cannot import one another, and these would otherwise be
copied into each script that needs them. A script run by hand
(redis-cli --eval) needs this file in front of it.
]]

-- Redis's own clock in ms: every instance and replica agrees on it, whatever the hosts' clocks say.
local function redisTimeMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An error reply when the script runs after `deadline` (Redis time in ms; 0: none), else nil.
-- A script that sat in a paused server's buffer past the moment its caller gave up
-- (and answered 503) must change nothing, so the failed request never takes effect.
local function staleReply(deadline)
  local ms = tonumber(deadline)
  if ms > 0 and redisTimeMs() > ms then
    return redis.error_reply('STALE the caller stopped waiting for this command')
  end
  return nil
end
