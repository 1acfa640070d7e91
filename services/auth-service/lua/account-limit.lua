--[[
Admits one password check of an account, reserving its failure in the
budget of the client it comes from (OWASP's answer to lockout abuse):
a client the account knows (a device token proved it, or a login from its
address succeeded) has a budget of its own, which failures from elsewhere
never touch; every other client shares the account's budget for unknown
clients. The choice of budget, the check and the reservation are one step.
Counters are fixed windows that start with their first count, as in
rate-limit.lua.

KEYS[1]   failures of clients the account does not know
KEYS[2]   failures of this client: its device's, or its address's
KEYS[3]   exists while a login from this client's address counts as known
ARGV[1]   1: a valid device token names the client (KEYS[2] is its device's); 0: none
ARGV[2]   limit: a budget holding this many failures refuses
ARGV[3]   window (ms) a new counter lives for
ARGV[4]   deadline: Redis time (ms) after which the caller no longer waits; 0: none

Returns {0, budget, 0} when the failure was reserved in KEYS[budget], else
{ms, budget, first}: the milliseconds until KEYS[budget] expires, and 1 on
its first refusal of the window (the counter is then raised one past the
limit, so that the caller warns once per window); error STALE (nothing
counted) when run after the deadline.
]]
local stale = staleReply(ARGV[4])
if stale then return stale end
local budget = 1
if ARGV[1] == '1' or redis.call('EXISTS', KEYS[3]) == 1 then budget = 2 end

local limit = tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[budget]) or '0')
if count >= limit then
  local ttl = redis.call('PTTL', KEYS[budget])
  if ttl < 0 then
    -- A counter without a TTL would refuse forever: give it a window.
    ttl = tonumber(ARGV[3])
    redis.call('PEXPIRE', KEYS[budget], ttl)
  end
  local first = 0
  if count == limit then
    redis.call('INCR', KEYS[budget])
    first = 1
  end
  return {math.max(ttl, 1), budget, first}
end

redis.call('INCR', KEYS[budget])
if redis.call('PTTL', KEYS[budget]) < 0 then redis.call('PEXPIRE', KEYS[budget], ARGV[3]) end
return {0, budget, 0}
