--[[
Claims a username for an account whose record was written just before, if
the name is free. It is the step that makes a registration take effect, so
it refuses once the caller has stopped waiting: a registration answered 503
never creates the account afterwards.

KEYS[1]  username claim   <p>username:<normalized name>
ARGV[1]  user id
ARGV[2]  deadline: Redis time (ms) after which the caller no longer waits; 0: none

Returns 1 when claimed, 0 when the name is taken; error STALE (nothing
claimed) when run after the deadline.
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua).
local stale = staleReply(ARGV[2])
if stale then return stale end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
return 0
