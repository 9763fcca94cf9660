-- GCRA (core/src/strategy/gcra.rs). State: tag 4, the TAT as [ms, ticks], where
-- TAT = ms * A + ticks ticks of 1/A ms. The bucket holds C = B * W ticks (B the burst,
-- A unless the limit has its own), also written [q, r]: C = q * A + r, r < A. Ticks
-- are kept relative to the effective time t (`used` = TAT - t * A), so that no number
-- grows with the clock: the storage runs this script only when A * W, B * W and
-- cost * W stay far below 2^53.
local S = {}
local NAME = 'gcra'

function S.load(key, A, W, now, B)
  B = B or A
  local C = B * W
  local q, r = idiv(C, A)
  local state = read_state(key, NAME)
  local c = {key = key, A = A, W = W, B = B, C = C, now = now}
  local ms, ticks = 0, 0
  if state ~= '' then
    if string.byte(state, 1) ~= 4 then corrupt(NAME, 'unknown tag') end
    if #state ~= 17 then corrupt(NAME, 'wrong length') end
    ms, ticks = struct.unpack('<I8I8', state, 2)
    if ticks >= A then corrupt(NAME, 'ticks not below the amount') end
    exact(ms)
    -- TAT past MAX * A + C, that is TAT - C = (ms - q) * A + (ticks - r) past MAX * A.
    if ms - q > MAX or (ms - q == MAX and ticks > r) then
      corrupt(NAME, 'TAT past Timestamp::MAX plus a window')
    end
  end
  -- Effective time: max(now, ceil((TAT - C) / A)) when TAT > C: ms - q, plus 1 when
  -- ticks > r.
  local seen = 0
  if ms > q or (ms == q and ticks > r) then
    seen = ms - q
    if ticks > r then seen = seen + 1 end
  end
  c.t = math.max(now, seen)
  local d = ms - c.t
  if d >= 0 then c.used = exact(d * A + ticks) else c.used = 0 end
  return c
end

-- remaining and reset_at with `used` ticks counted from t.
local function usage(c, used)
  local remaining = 0
  if c.C > used then remaining = idiv(c.C - used, c.W) end
  return remaining, clamp(c.t + ceil_div(used, c.A))
end

local function store(c, rel)
  local remaining, reset = usage(c, rel)
  return verdict(true, remaining, reset), {rel = rel}
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

function S.commit(c, plan, version)
  local whole, ticks = idiv(plan.rel, c.A)
  local ms = exact(c.t + whole)
  local ttl = ttl_ms((c.t - c.now) + ceil_div(plan.rel, c.A))
  local state = '\4' .. struct.pack('<I8I8', ms, ticks)
  write_state(c.key, version .. state, int(ttl))
  return ttl
end
