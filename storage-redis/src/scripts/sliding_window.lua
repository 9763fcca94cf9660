-- Sliding window counter (core/src/strategy/sliding_window.rs).
-- State: tag 3, [start, current, previous].
local S = {}
local NAME = 'sliding-window-counter'
S.NAME = NAME

function S.decode(state)
  if state == '' then return nil end
  if string.byte(state, 1) ~= 3 then corrupt(NAME, 'unknown tag') end
  if #state ~= 25 then corrupt(NAME, 'wrong length') end
  local start, current, previous = struct.unpack('<I8I8I8', state, 2)
  if start > MAX then corrupt(NAME, 'window start past Timestamp::MAX') end
  exact(current)
  exact(previous)
  return {start, current, previous}
end

function S.encode(f)
  return '\3' .. struct.pack('<I8I8I8', f[1], f[2], f[3])
end

function S.at(key, f, A, W, now)
  local start, current, previous, t = now, 0, 0, now
  if f then
    start, current, previous = f[1], f[2], f[3]
    t = math.max(now, start)
    local windows = idiv(t - start, W)
    if windows == 1 then
      start, current, previous = start + W, 0, current
    elseif windows > 1 then
      start, current, previous = t, 0, 0
    end
  end
  -- One constructor: a table that grows field by field rehashes on the way.
  return {key = key, A = A, W = W, now = now, t = t, start = start, current = current,
          previous = previous}
end

function S.load(key, A, W, now)
  return load_one(S, key, A, W, now)
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

-- A copy of the context, to change.
local function changed(c)
  return {key = c.key, A = c.A, W = c.W, now = c.now, t = c.t, start = c.start,
          current = c.current, previous = c.previous}
end

function S.hit(c, cost, test)
  local remaining, reset = usage(c)
  if cost > c.A then return verdict(false, remaining, reset) end
  if cost > remaining then return verdict(false, remaining, reset, instant(retry_ms(c, cost))) end
  if test then return verdict(true, remaining, reset) end
  local hit = changed(c)
  hit.current = exact(c.current + cost)
  local v = store(hit)
  return v, {c = hit}
end

function S.refund(c, cost, at)
  local r = changed(c)
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

function S.apply(_, plan, f)
  local s = plan.c
  f = f or {}
  f[1], f[2], f[3] = s.start, s.current, s.previous
  return f, ttl_ms((s.start - s.now) + 2 * s.W)
end

function S.commit(c, plan, version)
  return commit_one(S, c, plan, version)
end
