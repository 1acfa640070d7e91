--[[
Adds a signing key to the generated keyring, or creates the keyring. Which
key signs, and which are published, follows from each key's activate_at and
the clock alone, so this script (and prune-signing-keys.lua) are the only
writers: every instance derives the same states from the same stored array.

The keyring is a JSON array of {kid, alg, pem, created_at, activate_at}
(times in ms), in activation order. Entries written before rotation existed
have no activate_at; their created_at stands in for it.

KEYS[1]  keyring          <p>signing-keys (string, JSON array)
ARGV[1]  now (ms)
ARGV[2]  kid of the new key
ARGV[3]  alg of the new key
ARGV[4]  the new private key, PKCS#8 PEM
ARGV[5]  publish-ahead (ms): how long the new key is published before it signs
ARGV[6]  retire-after (ms): how long a key stays published after it stopped signing
ARGV[7]  mode: 'init'      create the keyring if there is none, else change nothing
               'operator'  add a pending key unless one is pending already
               'scheduled' as 'operator', and only if the newest key activated
                           at least ARGV[8] ms ago (so concurrent instances
                           add one key between them)
ARGV[8]  rotation interval (ms), for 'scheduled'
ARGV[9]  most keys the keyring may hold

Returns {status, keyring JSON as stored afterwards (false if none)}; status is
'created' (new keyring: the key signs at once, no token exists yet),
'added' (the key is pending), 'exists' (init: a keyring was there),
'pending' (a pending key is there already), 'not-due', or 'full'.
]]
local now = tonumber(ARGV[1])
local retire_after = tonumber(ARGV[6])
local mode = ARGV[7]

local function entry (activate_at)
  return { kid = ARGV[2], alg = ARGV[3], pem = ARGV[4], created_at = now, activate_at = activate_at }
end

local stored = redis.call('GET', KEYS[1])
local keys = {}
if stored then keys = cjson.decode(stored) end

if #keys == 0 then
  redis.call('SET', KEYS[1], cjson.encode({ entry(now) }))
  return { 'created', redis.call('GET', KEYS[1]) }
end
if mode == 'init' then return { 'exists', stored } end

-- Drop retired keys first: they no longer count against the limit.
local function activation (key) return tonumber(key.activate_at or key.created_at or 0) end
local kept = {}
for _, key in ipairs(keys) do
  local successor = nil
  for _, other in ipairs(keys) do
    local at = activation(other)
    if at > activation(key) and (successor == nil or at < successor) then successor = at end
  end
  if successor == nil or successor + retire_after > now then
    key.activate_at = activation(key)
    kept[#kept + 1] = key
  end
end
local changed = #kept ~= #keys
keys = kept

local newest = 0
for _, key in ipairs(keys) do
  if key.activate_at > newest then newest = key.activate_at end
end

local status
if newest > now then
  status = 'pending'
elseif mode == 'scheduled' and newest + tonumber(ARGV[8]) > now then
  status = 'not-due'
elseif #keys >= tonumber(ARGV[9]) then
  status = 'full'
else
  keys[#keys + 1] = entry(now + tonumber(ARGV[5]))
  changed = true
  status = 'added'
end

if changed then redis.call('SET', KEYS[1], cjson.encode(keys)) end
return { status, redis.call('GET', KEYS[1]) }
