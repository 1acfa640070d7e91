--[[
Lists a user's live sessions, pruning index entries whose session is gone.
The sessions are read from the index, but every key a script touches must
be declared in KEYS: the caller declares the sids it knows of, and when the
index holds one it did not declare, nothing changes and the script names
them all, so the caller runs it again with them declared.

KEYS[1]  session index    <p>user:{uid}:sessions
KEYS[2…] session hashes of the sids in ARGV[2…], in that order (same hash tag, same slot)
ARGV[1]  now (ms)
ARGV[2…] the declared sids

Returns {'listed', {sid, created_at, last_used_at, client_id, user_agent, ip} per live session},
or {'undeclared', {sid…}}: every sid the index holds (nothing changed).
]]
local declared = {}
for i = 2, #ARGV do declared[ARGV[i]] = KEYS[i] end
local live = '(' .. ARGV[1]
local sids = redis.call('ZRANGE', KEYS[1], live, '+inf', 'BYSCORE')
for _, sid in ipairs(sids) do
  if not declared[sid] then return {'undeclared', sids} end
end

local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local sessions = {}
for _, sid in ipairs(sids) do
  local f = redis.call('HMGET', declared[sid], 'created_at', 'last_used_at', 'client_id', 'user_agent', 'ip', 'exp', 'abs_exp')
  if f[1] and (tonumber(f[6]) or 0) > now and (tonumber(f[7]) or 0) > now then
    sessions[#sessions + 1] = {sid, f[1], f[2] or f[1], f[3] or '', f[4] or '', f[5] or ''}
  else
    redis.call('ZREM', KEYS[1], sid)
  end
end
return {'listed', sessions}
