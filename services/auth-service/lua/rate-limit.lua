--[[
Counts an attempt against fixed-window counters that share one hash tag,
unless one of them has already reached its limit: the check and the count
are one step, so a burst of parallel attempts can never get past a limit.
A counter starts its window on its first count and disappears with it.

KEYS[i]           a counter
ARGV[3i-2]        increment for KEYS[i] (a negative one only lowers an existing counter)
ARGV[3i-1]        limit for KEYS[i]: the attempt is refused when the counter already
                  holds this many; 0: never refuses
ARGV[3i]          window (ms) a new counter lives for
ARGV[3n+1]        deadline: Redis time (ms) after which the caller no longer waits; 0: none

Returns {0, 0, 0} when the attempt was counted, else {ms, i, first}: the
milliseconds until KEYS[i], the longest-lived counter that refused it,
expires, and 1 when this is the first refusal of a counter in its window
(nothing was counted then; the refusing counter is raised one past its
limit on its first refusal, so that the caller warns once per window, not
once per refused request); error STALE (nothing counted) when run after
the deadline.
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua).
local stale = staleReply(ARGV[3 * #KEYS + 1])
if stale then return stale end
local wait, refusedBy, first = 0, 0, 0
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 * i - 1])
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if limit > 0 and count >= limit then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      -- A counter without a TTL would refuse forever: give it a window.
      ttl = tonumber(ARGV[3 * i])
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    if count == limit then
      redis.call('INCR', KEYS[i])
      first = 1
    end
    if ttl > wait then wait, refusedBy = ttl, i end
  end
end
if wait > 0 then return {wait, refusedBy, first} end

for i = 1, #KEYS do
  local increment = tonumber(ARGV[3 * i - 2])
  if increment > 0 or (increment < 0 and redis.call('EXISTS', KEYS[i]) == 1) then
    redis.call('INCRBY', KEYS[i], increment)
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[3 * i]) end
  end
end
return {0, 0, 0}
