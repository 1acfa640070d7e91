--[[
Replaces a user's password hash if it is still the one the caller verified,
so two concurrent changes cannot both win. It raises the credential version
with it: a login verified against the old hash creates no session from this
moment (create-session.lua), even before the caller ends the user's sessions.

KEYS[1]  user hash        <p>user:{uid}
ARGV[1]  password hash the caller verified the current password against
ARGV[2]  new password hash
ARGV[3]  now (ms)

Returns 1 when changed, 0 when the user is gone or the hash moved on.
]]
if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2], 'password_changed_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'credential_version', 1)
return 1
