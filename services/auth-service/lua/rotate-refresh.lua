--[[
Rotates a refresh token in one step: check it, consume it, store its
successor and renew the session's TTLs. The caller has already checked the
token's MAC, so a token that is neither current nor the just-rotated one is
a genuine older token of this family coming back: the family is revoked.

KEYS[1]  session hash     <p>user:{uid}:session:<sid>
KEYS[2]  session index    <p>user:{uid}:sessions
ARGV[1]  hash of the presented token
ARGV[2]  hash of the successor
ARGV[3]  the successor, sealed under a key derived from the presented token
ARGV[4]  now (ms)
ARGV[5]  idle lifetime (ms)
ARGV[6]  reuse grace (ms)
ARGV[7]  client id presenting the token
ARGV[8]  sid
ARGV[9]  user agent
ARGV[10] client IP
ARGV[11] scope the client asks for ('' for the session's whole scope)
ARGV[12] deadline: Redis time (ms) after which the caller no longer waits; 0: none
ARGV[13] network of the presenting client: its IPv4 address, or its IPv6 /64
ARGV[14] hash of the presenting client's user agent
ARGV[15] most grace retries one rotation may answer
ARGV[16] RFC 7638 thumbprint of the DPoP proof's key that came with the request ('' for none)
ARGV[17] '1' if the client must send a DPoP proof, else '0'

Returns one of:
  {'rotated', expiry ms, scope, username}
  {'grace_retry', sealed successor, scope, username, expiry ms}  the just-rotated token, retried inside the grace window
  {'reuse_detected', reason} a spent token came back: the session is gone; reason is
                    'spent_token', or 'other_network' / 'other_user_agent' for a
                    grace retry from another client instance than the rotation's;
                    or a token of a DPoP-bound session came without a proof of its
                    key ('missing_dpop_proof') or with one of another key ('other_dpop_key')
  {'dpop_required'} the client must send a DPoP proof and sent none (an unbound session); nothing changed
  {'grace_exhausted'} the grace retries of this rotation are spent; nothing changed
  {'unknown'}       no such session (ended, expired, or never existed)
  {'wrong_client'}  the current token, presented by another client; nothing changed
  {'expired'}       idle or absolute lifetime over: the session is gone
  {'invalid_scope'} the asked scope is wider than the session's; nothing changed
  error STALE       run after the deadline; nothing changed
]]
-- A request already answered 503 never takes effect (staleReply: lib/prelude.lua).
local stale = staleReply(ARGV[12])
if stale then return stale end
local s = redis.call('HMGET', KEYS[1], 'cur', 'prev', 'prev_at', 'next', 'exp', 'abs_exp', 'client_id', 'scope', 'username',
  'prev_net', 'prev_ua', 'jkt')
local current, previous, rotatedAt, sealed, idleExpiry, absoluteExpiry, clientId, scope, username, rotatedFrom, rotatedWith, boundKey =
  s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12]
if not current then return {'unknown'} end

local now = tonumber(ARGV[4])
local sid = ARGV[8]

local function revoke()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], sid)
end

-- The TTL removes an idle session in time; these checks make the outcome
-- exact even when the key has not been reaped yet.
if now >= tonumber(idleExpiry) or now >= tonumber(absoluteExpiry) then
  revoke()
  return {'expired'}
end

-- Only the same client retrying inside the window is a race; any other
-- return of a consumed token is treated as theft.
local sameClient = clientId == ARGV[7]
local isCurrent = ARGV[1] == current
local isGraceRetry = not isCurrent and sameClient and previous and ARGV[1] == previous
  and now - tonumber(rotatedAt) <= tonumber(ARGV[6])
if not isCurrent and not isGraceRetry then
  revoke()
  return {'reuse_detected', 'spent_token'}
end
if not sameClient then return {'wrong_client'} end

-- A bound session's tokens are worth nothing without its key: whoever sends
-- one without a proof of that key copied it, current or just spent, and
-- the grace retry demands the key like any refresh.
local presentedKey = ARGV[16]
if boundKey and presentedKey ~= boundKey then
  revoke()
  return {'reuse_detected', presentedKey == '' and 'missing_dpop_proof' or 'other_dpop_key'}
end
if ARGV[17] == '1' and presentedKey == '' then return {'dpop_required'} end

-- The grace retry exists for tabs of one browser and a lost response: both
-- come from the client instance that rotated. The same token from another
-- network or user agent is a copy in someone else's hands. A rotation
-- recorded before these fields existed carries none and is not compared.
if isGraceRetry then
  local reason = nil
  if rotatedFrom and rotatedFrom ~= ARGV[13] then reason = 'other_network'
  elseif rotatedWith and rotatedWith ~= ARGV[14] then reason = 'other_user_agent' end
  if reason then
    revoke()
    return {'reuse_detected', reason}
  end
end

-- Checked before anything changes, so a refused scope leaves the token usable.
if ARGV[11] ~= '' then
  local granted = {}
  for name in string.gmatch(scope, '%S+') do granted[name] = true end
  for name in string.gmatch(ARGV[11], '%S+') do
    if not granted[name] then return {'invalid_scope'} end
  end
end

-- Refused, not revoked: the retry comes from the rotating client itself, so
-- its count says nothing of theft; the bound only caps how many access tokens
-- one spent refresh token can mint.
if isGraceRetry then
  if redis.call('HINCRBY', KEYS[1], 'prev_retries', 1) > tonumber(ARGV[15]) then
    return {'grace_exhausted'}
  end
  -- The successor's expiry: set by the rotation this retry repeats.
  return {'grace_retry', sealed, scope, username or '', string.format('%d', math.min(tonumber(idleExpiry), tonumber(absoluteExpiry)))}
end

local expiry = math.min(now + tonumber(ARGV[5]), tonumber(absoluteExpiry))
-- An unbound session binds to the first key that refreshes it with a proof
-- (RFC 9449 §5: a refresh token issued with a proof is bound), and never
-- changes key after: a copy of the spent token is then worth nothing.
if not boundKey and presentedKey ~= '' then
  redis.call('HSET', KEYS[1], 'jkt', presentedKey)
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', ARGV[1], 'prev_at', ARGV[4], 'next', ARGV[3],
  'last_used_at', ARGV[4], 'exp', string.format('%d', expiry), 'user_agent', ARGV[9], 'ip', ARGV[10],
  'prev_net', ARGV[13], 'prev_ua', ARGV[14], 'prev_retries', 0)
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], expiry - now)
redis.call('ZADD', KEYS[2], expiry, sid)
if redis.call('PTTL', KEYS[2]) < expiry - now then
  redis.call('PEXPIRE', KEYS[2], expiry - now)
end
return {'rotated', string.format('%d', expiry), scope, username or ''}
