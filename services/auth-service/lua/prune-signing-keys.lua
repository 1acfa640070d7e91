--[[
Deletes retired keys from the generated keyring: keys whose successor began
signing at least retire-after ms ago, so every token they signed has expired.
The keyring therefore holds only published keys and stays small.

KEYS[1]  keyring          <p>signing-keys (string, JSON array; see rotate-signing-key.lua)
ARGV[1]  now (ms)
ARGV[2]  retire-after (ms)

Returns {number of keys deleted, keyring JSON as stored afterwards (false if none)}.
]]
local now = tonumber(ARGV[1])
local retire_after = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
if not stored then return { 0, false } end
local keys = cjson.decode(stored)

local function activation (key) return tonumber(key.activate_at or key.created_at or 0) end
local kept = {}
for _, key in ipairs(keys) do
  local successor = nil
  for _, other in ipairs(keys) do
    local at = activation(other)
    if at > activation(key) and (successor == nil or at < successor) then successor = at end
  end
  if successor == nil or successor + retire_after > now then kept[#kept + 1] = key end
end

-- The newest key has no successor, so the array never becomes empty (cjson would write {}).
local removed = #keys - #kept
if removed > 0 then redis.call('SET', KEYS[1], cjson.encode(kept)) end
return { removed, redis.call('GET', KEYS[1]) }
