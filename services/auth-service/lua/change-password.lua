--[[
Replaces a user's password hash if it is still the one the caller verified,
so two concurrent changes cannot both win. It raises the credential version
with it: a login verified against the old hash creates no session from this
moment (create-session.lua), even before the caller ends the user's sessions.

KEYS[1]  user hash        <p>user:{uid}
ARGV[1]  password hash the caller verified the current password against
ARGV[2]  new password hash
ARGV[3]  now (ms)
ARGV[4]  deadline: Redis time (ms) after which the caller no longer waits; 0: none

Returns 1 when changed, 0 when the user is gone or the hash moved on; error
STALE (nothing changed) when run after the deadline.
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua):
-- a password changed behind a failed request would also have ended no session.
local stale = staleReply(ARGV[4])
if stale then return stale end
if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2], 'password_changed_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'credential_version', 1)
return 1
