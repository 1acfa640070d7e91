--[[
Locks or unlocks a user (an operator's command): a locked user's password
grant is refused. Locking raises the credential version too, so a login
that read the user before the lock creates no session after it
(create-session.lua). Only an existing user is changed, so a mistyped id
never leaves a stray hash behind.

KEYS[1]  user hash        <p>user:{uid}
ARGV[1]  'lock' or 'unlock'
ARGV[2]  now (ms): the lock's time
ARGV[3]  why (shown by the command; may be '')

Returns 1 when changed, 0 when the user does not exist, -1 when it already
was in that state (nothing changed).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local locked = redis.call('HEXISTS', KEYS[1], 'locked_at') == 1
if ARGV[1] == 'lock' then
  if locked then return -1 end
  redis.call('HSET', KEYS[1], 'locked_at', ARGV[2], 'locked_reason', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'credential_version', 1)
  return 1
end
if not locked then return -1 end
redis.call('HDEL', KEYS[1], 'locked_at', 'locked_reason')
return 1
