--[[
Whether an access token is still honoured: its session lives (when it has
one) and the token itself is not on the revocation list. Read-only.

KEYS[1]  session hash     <p>user:{sub}:session:<sid> (the revoked-token key again when there is no session)
KEYS[2]  revoked token    <p>user:{sub}:revoked-token:<jti>
ARGV[1]  now (ms)
ARGV[2]  '1' if the token names a session, '0' if not

Returns 1 when the token is live, 0 when it is not.
]]
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[2] == '0' then return 1 end
local s = redis.call('HMGET', KEYS[1], 'exp', 'abs_exp')
local now = tonumber(ARGV[1])
if not s[1] or tonumber(s[1]) <= now or tonumber(s[2]) <= now then return 0 end
return 1
