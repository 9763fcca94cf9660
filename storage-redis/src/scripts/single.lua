-- One operation on one key.
-- KEYS[1]  the stored key
-- ARGV     kind ('hit', 'test' or 'refund'), amount, window_ms, now, cost, at (refunds),
--          the new version (8 bytes), burst (GCRA: the bucket's units)
-- Returns {allowed, remaining, reset_at, retry_at (-1: none), ttl_ms (-1: no write)},
-- {-1} to hand the operation to the exact generic path, or a LIMITER_CORRUPT error.
return run(function()
  local kind = ARGV[1]
  local A, W, now, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local c = S.load(KEYS[1], A, W, now, tonumber(ARGV[8]))
  local v, plan
  if kind == 'refund' then
    v, plan = S.refund(c, cost, tonumber(ARGV[6]))
  else
    v, plan = S.hit(c, cost, kind == 'test')
  end
  local ttl = -1
  if plan then ttl = S.commit(c, plan, ARGV[7]) end
  v[5] = ttl
  return v
end)
