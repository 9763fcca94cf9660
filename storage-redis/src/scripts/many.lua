-- Several operations on one key, in order, each as if it ran alone right after the
-- one before (the rules of single.lua, one operation after another, in one round
-- trip): what the limiter's coalescing sends for the calls queued on one key.
-- KEYS[1]  the stored key
-- ARGV     amount, window_ms, burst (GCRA: the bucket's units), then five per
--          operation: kind ('hit', 'test' or 'refund'), now, cost, at (refunds), the
--          new version (8 bytes)
-- Returns five numbers per operation, as single.lua: {allowed, remaining, reset_at,
-- retry_at (-1: none), ttl_ms (-1: no write)}. An operation whose numbers the script
-- cannot compute exactly is not run, nor any after it: the answer then ends with -1
-- after the operations that ran, and the storage runs the rest one by one. Or a
-- LIMITER_CORRUPT error.
local A, W, B = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
-- One-value states are read and written once for the whole call (write_state keeps
-- each write until `flush`); a moving-window log is written as it goes.
deferred = {}
for i = 4, #ARGV, 5 do
  local v = run(function()
    local kind, now, cost = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local c = S.load(KEYS[1], A, W, now, B)
    local verdict, plan
    if kind == 'refund' then
      verdict, plan = S.refund(c, cost, tonumber(ARGV[i + 3]))
    else
      verdict, plan = S.hit(c, cost, kind == 'test')
    end
    local ttl = -1
    if plan then ttl = S.commit(c, plan, ARGV[i + 4]) end
    verdict[5] = ttl
    return verdict
  end)
  -- An error reply (a corrupt state) is the answer; only the first operation reads a
  -- state that no operation of this call wrote.
  if v.err then
    flush()
    return v
  end
  if #v == 1 then
    flush()
    out[#out + 1] = -1
    return out
  end
  for j = 1, 5 do out[#out + 1] = v[j] end
end
flush()
return out
