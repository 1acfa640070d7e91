--[[
Ends every session of a user, optionally but one ("log out everywhere",
password change). The index is bounded by the per-user session maximum.
Every key a script touches must be declared in KEYS: the caller declares
the sids it knows of, and when the index holds another, nothing changes and
the script names them all, so the caller runs it again with them declared.

It raises the user's credential version in the same step, so that a login
verified before it, whose session is not created yet, creates none
(create-session.lua): of the sessions granted before this call, only the
kept one outlives it.

KEYS[1]  session index    <p>user:{uid}:sessions
KEYS[2]  user hash        <p>user:{uid} (field credential_version)
KEYS[3…] session hashes of the sids in ARGV[2…], in that order (same hash tag, same slot)
ARGV[1]  sid to keep, or '' to end them all
ARGV[2…] the declared sids

Returns {'revoked', {sid…}}: the sessions that were live and are now ended,
or {'undeclared', {sid…}}: every sid the index holds (nothing changed).
]]
local declared = {}
for i = 2, #ARGV do declared[ARGV[i]] = KEYS[i + 1] end
local sids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, sid in ipairs(sids) do
  if sid ~= ARGV[1] and not declared[sid] then return {'undeclared', sids} end
end

redis.call('HINCRBY', KEYS[2], 'credential_version', 1)

local ended = {}
for _, sid in ipairs(sids) do
  if sid ~= ARGV[1] then
    if redis.call('DEL', declared[sid]) == 1 then ended[#ended + 1] = sid end
    redis.call('ZREM', KEYS[1], sid)
  end
end
return {'revoked', ended}
