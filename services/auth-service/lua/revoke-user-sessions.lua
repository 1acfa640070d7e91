--[[
Ends every session of a user, optionally but one ("log out everywhere",
password change). The index is bounded by the per-user session maximum.

KEYS[1]  session index    <p>user:{uid}:sessions
ARGV[1]  session key prefix <p>user:{uid}:session: (same hash tag, same slot)
ARGV[2]  sid to keep, or '' to end them all

Returns the ids of the sessions that were live and are now ended.
]]
local ended = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    if redis.call('DEL', ARGV[1] .. sid) == 1 then ended[#ended + 1] = sid end
    redis.call('ZREM', KEYS[1], sid)
  end
end
return ended
