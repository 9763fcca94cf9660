-- Compare-and-set of several keys at once, all or nothing: what a wide unit of one
-- client's coalesced multi-limit hits writes, after reading every key with MGET and
-- deciding in the client. All keys share one hash slot.
--
-- Stored value: an 8-byte version, then the strategy's state bytes.
-- KEYS     the stored keys
-- ARGV     the new version (8 bytes), then three per key: the version read (8 bytes,
--          or '' when the key was absent), the new state bytes, and the time-to-live
--          in milliseconds ('' when the key's state is unchanged: not written)
-- Returns 1 when it wrote, 0 when a key was no longer at the version read (nothing
-- written).
for i = 1, #KEYS do
  if redis.call('GETRANGE', KEYS[i], 0, 7) ~= ARGV[3 * i - 1] then
    return 0
  end
end
for i = 1, #KEYS do
  local ttl = ARGV[3 * i + 1]
  if ttl ~= '' then
    redis.call('SET', KEYS[i], ARGV[1] .. ARGV[3 * i], 'PX', ttl)
  end
end
return 1
