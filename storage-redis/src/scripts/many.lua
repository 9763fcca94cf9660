-- Several operations on one key, in order, each as if it ran alone right after the
-- one before (the rules of single.lua, one operation after another, in one round
-- trip): what the limiter's coalescing sends for the calls queued on one key.
-- KEYS[1]  the stored key
-- ARGV     amount, window_ms, burst (GCRA: the bucket's units), the new version (8
--          bytes), then three per operation: now, cost, and what it is: -1 a hit,
--          -2 a test, else a refund of a hit made at that instant
-- Returns four numbers per operation: {allowed, remaining, reset_at, retry_at (-1:
-- none)}. An operation whose numbers the script cannot compute exactly is not run,
-- nor any after it: the answer then ends with -1 after the operations that ran, and
-- the storage runs the rest one by one. Or a LIMITER_CORRUPT error.
--
-- A one-value state (fixed window, sliding window, GCRA) is decoded once and written
-- once, after the last operation that changed it; a moving-window log is read once
-- (its chunks kept for the call) and its records written as they go, its header and
-- time-to-live once at the end. Every write of the call carries the same version:
-- only the last one can be seen by anyone else.
local key = KEYS[1]
local A, W, B, version = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out, n = {}, 0
local f, ttl -- a one-value state's fields after the operations run so far, the write's TTL

local function operate(c, now, cost, what)
  if what >= 0 then return S.refund(c, cost, what) end
  return S.hit(c, cost, what == -2)
end

local function record(v)
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = v[1], v[2], v[3], v[4]
  n = n + 4
end

-- A moving-window log's header and time-to-live are written once, at the end.
S.defer = S.flush ~= nil
local ok, err = pcall(function()
  if S.decode then
    f = S.decode(read_state(key, S.NAME), A, W, B)
    for i = 5, #ARGV, 3 do
      local now, cost, what = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
      local c = S.at(key, f, A, W, now, B)
      local v, plan = operate(c, now, cost, what)
      -- apply raises before f changes when the fields would not be exact.
      if plan then f, ttl = S.apply(c, plan, f) end
      record(v)
    end
  else
    for i = 5, #ARGV, 3 do
      local now, cost, what = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
      local c = S.load(key, A, W, now, B)
      local v, plan = operate(c, now, cost, what)
      if plan then S.commit(c, plan, version) end
      record(v)
    end
  end
end)
if ttl then redis.call('SET', key, version .. S.encode(f), 'PX', int(ttl)) end
if S.flush then S.flush() end
if ok then return out end
if type(err) == 'table' then
  if err.fallback then
    out[n + 1] = -1
    return out
  end
  if err.corrupt then return redis.error_reply('LIMITER_CORRUPT ' .. err.corrupt) end
end
error(err)
