-- A multi-limit hit, all or nothing. All keys share one hash slot (one client's group).
-- KEYS     the stored keys, one per limit
-- ARGV     cost, now, the new version (8 bytes), then amount, window_ms and burst per key
-- Returns 4 numbers per key (allowed, remaining, reset_at, retry_at): the hits' verdicts
-- when every limit admits the hit (and then all are written), else every limit's test
-- verdict (and nothing is written); or {-1} for the generic path.
return run(function()
  local cost, now, version = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
  local contexts, plans, verdicts = {}, {}, {}
  local all = true
  for i = 1, #KEYS do
    local base = 3 * i
    local c = S.load(KEYS[i], tonumber(ARGV[1 + base]), tonumber(ARGV[2 + base]), now,
      tonumber(ARGV[3 + base]))
    local v, plan = S.hit(c, cost, false)
    contexts[i], plans[i], verdicts[i] = c, plan, v
    if v[1] == 0 then all = false end
  end
  if all and S.decode then
    -- Every key's new state first (apply raises when a number would not be exact),
    -- so that a batch handed to the generic path has written nothing.
    local new = {}
    for i = 1, #KEYS do
      if plans[i] then new[i] = {S.apply(contexts[i], plans[i], nil)} end
    end
    for i = 1, #KEYS do
      if new[i] then
        redis.call('SET', KEYS[i], version .. S.encode(new[i][1]), 'PX', int(new[i][2]))
      end
    end
  end
  local out = {}
  for i = 1, #KEYS do
    local v = verdicts[i]
    if all then
      if plans[i] and not S.decode then S.commit(contexts[i], plans[i], version) end
    else
      v = S.hit(contexts[i], cost, true)
    end
    for j = 1, 4 do out[#out + 1] = v[j] end
  end
  return out
end)
