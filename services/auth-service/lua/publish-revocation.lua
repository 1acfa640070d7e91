--[[
Appends one revocation to the feed that stateless verifiers follow, and trims
entries older than the longest access-token lifetime, so the stream stays
bounded. The stream is a key of its own (its own Redis Cluster slot): it is
written right after the revocation's script, never inside it.

Each entry names the id of the entry before it (`prev`), so a reader that
finds a different predecessor than the last entry it saw knows it missed
some (trimmed, or the stream lost) instead of silently skipping them.
Trimming uses the server's clock, the same clock that makes the entry ids.

KEYS[1]  the stream       <p>revocations
ARGV[1]  how long entries are kept (ms)
ARGV[2…] field, value pairs of the event

Returns the new entry's id.
]]
local prev = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then prev = info[i + 1] break end
  end
end
local nowMs = redisTimeMs()
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
-- '~': Redis drops whole macro nodes only, so trimming costs almost nothing; a few more entries may stay.
return redis.call('XADD', KEYS[1], 'MINID', '~', nowMs - tonumber(ARGV[1]), '*', 'prev', prev, unpack(fields))
