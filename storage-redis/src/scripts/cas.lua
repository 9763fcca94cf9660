-- Compare-and-set of one key's state: the required storage core.
--
-- Stored value: an 8-byte version, then the strategy's state bytes.
-- KEYS[1]  the stored key
-- ARGV[1]  the expected version (8 bytes), or '' when the key must be absent
-- ARGV[2]  the new version (8 bytes)
-- ARGV[3]  the new state bytes
-- ARGV[4]  the time-to-live in milliseconds
-- Returns 1 when it wrote, 0 when the key was not at the expected version.
--
-- GETRANGE of an absent key is '', and of a present key its 8-byte version, so one
-- comparison covers both cases without reading the whole state.
local current = redis.call('GETRANGE', KEYS[1], 0, 7)
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2] .. ARGV[3], 'PX', ARGV[4])
return 1
