-- Sliding window counter (core/src/strategy/sliding_window.rs).
-- State: tag 3, [start, current, previous].
local S = {}
local NAME = 'sliding-window-counter'

function S.load(key, A, W, now)
  local state = read_state(key, NAME)
  local c = {key = key, A = A, W = W, now = now}
  if state == '' then
    c.start, c.current, c.previous, c.t = now, 0, 0, now
    return c
  end
  if string.byte(state, 1) ~= 3 then corrupt(NAME, 'unknown tag') end
  if #state ~= 25 then corrupt(NAME, 'wrong length') end
  local start, current, previous = struct.unpack('<I8I8I8', state, 2)
  if start > MAX then corrupt(NAME, 'window start past Timestamp::MAX') end
  exact(current)
  exact(previous)
  local t = math.max(now, start)
  local windows = idiv(t - start, W)
  if windows == 0 then
    c.start, c.current, c.previous = start, current, previous
  elseif windows == 1 then
    c.start, c.current, c.previous = start + W, 0, current
  else
    c.start, c.current, c.previous = t, 0, 0
  end
  c.t = t
  return c
end

-- floor(previous * (W - elapsed) / W)
local function weighted(previous, W, elapsed)
  return (idiv(exact(previous * math.max(W - elapsed, 0)), W))
end

local function used(c)
  return exact(c.current + weighted(c.previous, c.W, c.t - c.start))
end

-- The least elapsed e with floor(previous * (W - e) / W) <= budget.
local function first_within(previous, W, budget)
  if previous == 0 then return 0 end
  local bound = exact((budget + 1) * W) - 1
  local max_left = idiv(bound, previous)
  return math.max(W - max_left, 0)
end

local function retry_ms(c, cost)
  local budget = c.A - cost - c.current
  if budget >= 0 then
    local e = first_within(c.previous, c.W, budget)
    if e < c.W then return math.max(c.start + e, c.t) end
  end
  local e = first_within(c.current, c.W, c.A - cost)
  return math.max(c.start + c.W + math.min(e, c.W), c.t)
end

local function usage(c)
  local u = used(c)
  local reset = c.t
  if u > 0 then reset = clamp(retry_ms(c, c.A)) end
  return math.max(c.A - u, 0), reset
end

local function store(c)
  local remaining, reset = usage(c)
  return verdict(true, remaining, reset), {}
end

function S.hit(c, cost, test)
  local remaining, reset = usage(c)
  if cost > c.A then return verdict(false, remaining, reset) end
  if cost > remaining then return verdict(false, remaining, reset, instant(retry_ms(c, cost))) end
  if test then return verdict(true, remaining, reset) end
  local hit = {}
  for k, v in pairs(c) do hit[k] = v end
  hit.current = exact(c.current + cost)
  local v = store(hit)
  return v, {c = hit}
end

function S.refund(c, cost, at)
  local r = {}
  for k, v in pairs(c) do r[k] = v end
  if r.start <= at and at < r.start + r.W then
    r.current = math.max(r.current - cost, 0)
  elseif math.max(r.start - r.W, 0) <= at and at < r.start then
    r.previous = math.max(r.previous - cost, 0)
  else
    local remaining, reset = usage(c)
    return verdict(true, remaining, reset)
  end
  local v = store(r)
  return v, {c = r}
end

function S.commit(c, plan, version)
  local s = plan.c
  local ttl = ttl_ms((s.start - s.now) + 2 * s.W)
  local state = '\3' .. struct.pack('<I8I8I8', s.start, s.current, s.previous)
  write_state(s.key, version .. state, int(ttl))
  return ttl
end
