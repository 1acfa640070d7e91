--[[
Lists a user's live sessions, pruning index entries whose session is gone.

KEYS[1]  session index    <p>user:{uid}:sessions
ARGV[1]  session key prefix <p>user:{uid}:session: (same hash tag, same slot)
ARGV[2]  now (ms)

Returns {sid, created_at, last_used_at, client_id, user_agent, ip} per live session.
]]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local sessions = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. sid, 'created_at', 'last_used_at', 'client_id', 'user_agent', 'ip', 'exp', 'abs_exp')
  local now = tonumber(ARGV[2])
  if f[1] and (tonumber(f[6]) or 0) > now and (tonumber(f[7]) or 0) > now then
    sessions[#sessions + 1] = {sid, f[1], f[2] or f[1], f[3] or '', f[4] or '', f[5] or ''}
  else
    redis.call('ZREM', KEYS[1], sid)
  end
end
return sessions
