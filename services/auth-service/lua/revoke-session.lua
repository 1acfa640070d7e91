--[[
Ends one session, optionally only if it belongs to a given client
(RFC 7009: a client may revoke only its own tokens).

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions
ARGV[1]  sid
ARGV[2]  client id the session must belong to, or '' for any

Returns 1 if the session existed and is now ended, 0 if there was none,
-1 if it belongs to another client (nothing changed).
]]
if ARGV[2] ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'client_id')
  if owner and owner ~= ARGV[2] then return -1 end
end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
