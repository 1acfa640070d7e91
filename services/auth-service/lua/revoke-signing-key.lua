--[[
Revokes one signing key of the generated keyring (a leaked key): it leaves
the keyring, and so the JWKS and every instance's signer, at once. If it was
the key that signs now, the replacement key given in ARGV is added and signs
from `now`, rather than KEY_PUBLISH_AHEAD later: tokens it signs meet
verifiers that do not know it yet, which fetch the key set again for an
unknown kid. Pending and retiring keys are only removed; the signer stays.

Which key signs follows the same rule as core/keys/rotation-policy.ts (signerOf): the
last one activated at `now`, or the first of all when none has activated.

KEYS[1]  keyring          <p>signing-keys (string, JSON array; see rotate-signing-key.lua)
ARGV[1]  now (ms)
ARGV[2]  kid to revoke
ARGV[3]  kid of the replacement key
ARGV[4]  alg of the replacement key
ARGV[5]  the replacement private key, PKCS#8 PEM

Returns {status, keyring JSON as stored afterwards (false if none)}; status is
'replaced' (the revoked key was signing; the replacement signs now),
'removed' (it was pending or retiring) or 'not-found' (nothing changed).
]]
local now = tonumber(ARGV[1])
local stored = redis.call('GET', KEYS[1])
if not stored then return { 'not-found', false } end
local keys = cjson.decode(stored)

local function activation (key) return tonumber(key.activate_at or key.created_at or 0) end
-- Ties on activation are broken by kid, as in core/keys/rotation-policy.ts.
local function later (a, b)
  if activation(a) ~= activation(b) then return activation(a) > activation(b) end
  return a.kid > b.kid
end

local signer, first, found = nil, nil, nil
for index, key in ipairs(keys) do
  if first == nil or later(first, key) then first = key end
  if activation(key) <= now and (signer == nil or later(key, signer)) then signer = key end
  if key.kid == ARGV[2] then found = index end
end
if found == nil then return { 'not-found', stored } end
signer = signer or first

local kept = {}
for index, key in ipairs(keys) do
  if index ~= found then
    key.activate_at = activation(key)
    kept[#kept + 1] = key
  end
end

local status = 'removed'
if signer.kid == ARGV[2] then
  kept[#kept + 1] = { kid = ARGV[3], alg = ARGV[4], pem = ARGV[5], created_at = now, activate_at = now }
  status = 'replaced'
end

redis.call('SET', KEYS[1], cjson.encode(kept))
return { status, redis.call('GET', KEYS[1]) }
