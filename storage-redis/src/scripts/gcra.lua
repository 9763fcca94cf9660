-- GCRA (core/src/strategy/gcra.rs). State: tag 4, the TAT as [ms, ticks], where
-- TAT = ms * A + ticks ticks of 1/A ms. The bucket holds C = B * W ticks (B the burst,
-- A unless the limit has its own), also written [q, r]: C = q * A + r, r < A. Ticks
-- are kept relative to the effective time t (`used` = TAT - t * A), so that no number
-- grows with the clock: the storage runs this script only when A * W, B * W and
-- cost * W stay far below 2^53.
local S = {}
local NAME = 'gcra'
S.NAME = NAME

-- The bucket's size in ticks, C = B * W, also as [q, r]: C = q * A + r, r < A.
local function bucket(A, W, B)
  local C = B * W
  local q, r = idiv(C, A)
  return C, q, r
end

function S.decode(state, A, W, B)
  if state == '' then return nil end
  if string.byte(state, 1) ~= 4 then corrupt(NAME, 'unknown tag') end
  if #state ~= 17 then corrupt(NAME, 'wrong length') end
  local ms, ticks = struct.unpack('<I8I8', state, 2)
  if ticks >= A then corrupt(NAME, 'ticks not below the amount') end
  exact(ms)
  local _, q, r = bucket(A, W, B or A)
  -- TAT past MAX * A + C, that is TAT - C = (ms - q) * A + (ticks - r) past MAX * A.
  if ms - q > MAX or (ms - q == MAX and ticks > r) then
    corrupt(NAME, 'TAT past Timestamp::MAX plus a window')
  end
  return {ms, ticks}
end

function S.encode(f)
  return '\4' .. struct.pack('<I8I8', f[1], f[2])
end

function S.at(key, f, A, W, now, B)
  B = B or A
  local C, q, r = bucket(A, W, B)
  local ms, ticks = 0, 0
  if f then ms, ticks = f[1], f[2] end
  -- Effective time: max(now, ceil((TAT - C) / A)) when TAT > C: ms - q, plus 1 when
  -- ticks > r.
  local seen = 0
  if ms > q or (ms == q and ticks > r) then
    seen = ms - q
    if ticks > r then seen = seen + 1 end
  end
  local t = math.max(now, seen)
  local d, used = ms - t, 0
  if d >= 0 then used = exact(d * A + ticks) end
  -- One constructor: a table that grows field by field rehashes on the way.
  return {key = key, A = A, W = W, B = B, C = C, now = now, t = t, used = used}
end

function S.load(key, A, W, now, B)
  return load_one(S, key, A, W, now, B)
end

-- remaining and reset_at with `used` ticks counted from t.
local function usage(c, used)
  local remaining = 0
  if c.C > used then remaining = idiv(c.C - used, c.W) end
  return remaining, clamp(c.t + ceil_div(used, c.A))
end

local function store(c, rel)
  local remaining, reset = usage(c, rel)
  -- The plan: the ticks used from t after the operation.
  return verdict(true, remaining, reset), rel
end

function S.hit(c, cost, test)
  local remaining, reset = usage(c, c.used)
  if cost > c.B then return verdict(false, remaining, reset) end
  local new = exact(c.used + cost * c.W)
  if new > c.C then
    return verdict(false, remaining, reset, instant(c.t + ceil_div(new - c.C, c.A)))
  end
  if test then return verdict(true, remaining, reset) end
  return store(c, new)
end

function S.refund(c, cost, at)
  if c.used <= 0 then
    local remaining, reset = usage(c, c.used)
    return verdict(true, remaining, reset)
  end
  local back = exact(cost * c.W)
  local elapsed = math.max(c.t - at, 0) * c.A
  local give = 0
  if elapsed < back then give = back - elapsed end
  return store(c, math.max(c.used - give, 0))
end

function S.apply(c, rel, f)
  local whole, ticks = idiv(rel, c.A)
  local ms = exact(c.t + whole)
  f = f or {}
  f[1], f[2] = ms, ticks
  return f, ttl_ms((c.t - c.now) + ceil_div(rel, c.A))
end

function S.commit(c, plan, version)
  return commit_one(S, c, plan, version)
end
