--[[
Ends one session.

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions
ARGV[1]  sid

Returns 1 if the session existed, 0 otherwise.
]]
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
