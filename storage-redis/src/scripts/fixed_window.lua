-- Fixed window (core/src/strategy/fixed_window.rs). State: tag 1, [start, count].
local S = {}
local NAME = 'fixed-window'

function S.load(key, A, W, now)
  local state = read_state(key, NAME)
  local c = {key = key, A = A, W = W, now = now}
  local start, count
  if state ~= '' then
    if string.byte(state, 1) ~= 1 then corrupt(NAME, 'unknown tag') end
    if #state ~= 17 then corrupt(NAME, 'wrong length') end
    start, count = struct.unpack('<I8I8', state, 2)
    if start > MAX then corrupt(NAME, 'window start past Timestamp::MAX') end
    exact(count)
  end
  if start and math.max(now, start) < start + W then
    c.start, c.count, c.t = start, count, math.max(now, start)
  else
    local t = math.max(now, start or now)
    c.start, c.count, c.t = t, 0, t
  end
  return c
end

local function usage(c, count)
  local reset = c.t
  if count > 0 then reset = clamp(c.start + c.W) end
  return math.max(c.A - count, 0), reset
end

local function store(c, count)
  local remaining, reset = usage(c, count)
  return verdict(true, remaining, reset), {count = count}
end

function S.hit(c, cost, test)
  local remaining, reset = usage(c, c.count)
  if cost > c.A then return verdict(false, remaining, reset) end
  if cost > remaining then return verdict(false, remaining, reset, instant(c.start + c.W)) end
  if test then return verdict(true, remaining, reset) end
  return store(c, c.count + cost)
end

function S.refund(c, cost, at)
  if not (c.start <= at and at < c.start + c.W) then
    local remaining, reset = usage(c, c.count)
    return verdict(true, remaining, reset)
  end
  return store(c, math.max(c.count - cost, 0))
end

function S.commit(c, plan, version)
  local ttl = ttl_ms((c.start - c.now) + c.W)
  local state = '\1' .. struct.pack('<I8I8', c.start, plan.count)
  write_state(c.key, version .. state, int(ttl))
  return ttl
end
