-- Several multi-limit hits on the same keys, in order, each all or nothing as
-- batch.lua decides it right after the one before: what the limiter's coalescing
-- sends for one client's queued hit_all calls. All keys share one hash slot.
-- KEYS     the stored keys, one per limit
-- ARGV     the new version (8 bytes), amount, window_ms and burst per key, then two per
--          call: now, cost
-- Returns 4 numbers per key per call, as batch.lua. A call whose numbers the script
-- cannot compute exactly is not run, nor any after it: the answer then ends with -1
-- after the calls that ran, and the storage runs the rest one by one. Or a
-- LIMITER_CORRUPT error.
--
-- One-value states (fixed window, sliding window, GCRA) are decoded once and written
-- once per key, after the last call that changed them; a moving-window log is read
-- once (its chunks kept for the call) and its records written as they go, its header
-- and time-to-live once at the end. Every write carries the same version: only the
-- last one can be seen by anyone else.
local version = ARGV[1]
local n = #KEYS
local A, W, B = {}, {}, {}
for i = 1, n do
  A[i], W[i], B[i] = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
end
local out, len = {}, 0
local f, ttl = {}, {} -- one-value states: each key's fields, and its last write's TTL

-- A moving-window log's header and time-to-live are written once, at the end.
S.defer = S.flush ~= nil
local ok, err = pcall(function()
  if S.decode then
    for i = 1, n do f[i] = S.decode(read_state(KEYS[i], S.NAME), A[i], W[i], B[i]) end
  end
  for j = 3 * n + 2, #ARGV, 2 do
    local now, cost = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
    local contexts, plans, verdicts, all = {}, {}, {}, true
    for i = 1, n do
      local c
      if S.decode then
        c = S.at(KEYS[i], f[i], A[i], W[i], now, B[i])
      else
        c = S.load(KEYS[i], A[i], W[i], now, B[i])
      end
      local v, plan = S.hit(c, cost, false)
      contexts[i], plans[i], verdicts[i] = c, plan, v
      if v[1] == 0 then all = false end
    end
    if not all then
      for i = 1, n do verdicts[i] = S.hit(contexts[i], cost, true) end
    elseif S.decode then
      -- Every key's new fields first (apply raises when a number would not be
      -- exact), so that a call stopped there changes nothing.
      local new = {}
      for i = 1, n do
        if plans[i] then new[i] = {S.apply(contexts[i], plans[i], nil)} end
      end
      for i = 1, n do
        if new[i] then f[i], ttl[i] = new[i][1], new[i][2] end
      end
    else
      for i = 1, n do
        if plans[i] then S.commit(contexts[i], plans[i], version) end
      end
    end
    for i = 1, n do
      local v = verdicts[i]
      out[len + 1], out[len + 2], out[len + 3], out[len + 4] = v[1], v[2], v[3], v[4]
      len = len + 4
    end
  end
end)
for i = 1, n do
  if ttl[i] then redis.call('SET', KEYS[i], version .. S.encode(f[i]), 'PX', int(ttl[i])) end
end
if S.flush then S.flush() end
if ok then return out end
if type(err) == 'table' then
  if err.fallback then
    out[len + 1] = -1
    return out
  end
  if err.corrupt then return redis.error_reply('LIMITER_CORRUPT ' .. err.corrupt) end
end
error(err)
