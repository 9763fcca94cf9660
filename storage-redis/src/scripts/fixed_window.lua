-- Fixed window (core/src/strategy/fixed_window.rs). State: tag 1, [start, count].
local S = {}
local NAME = 'fixed-window'
S.NAME = NAME

function S.decode(state)
  if state == '' then return nil end
  if string.byte(state, 1) ~= 1 then corrupt(NAME, 'unknown tag') end
  if #state ~= 17 then corrupt(NAME, 'wrong length') end
  local start, count = struct.unpack('<I8I8', state, 2)
  if start > MAX then corrupt(NAME, 'window start past Timestamp::MAX') end
  exact(count)
  return {start, count}
end

function S.encode(f)
  return '\1' .. struct.pack('<I8I8', f[1], f[2])
end

function S.at(key, f, A, W, now)
  local start, count, t
  if f then start, count = f[1], f[2] end
  if start and math.max(now, start) < start + W then
    t = math.max(now, start)
  else
    t = math.max(now, start or now)
    start, count = t, 0
  end
  -- One constructor: a table that grows field by field rehashes on the way.
  return {key = key, A = A, W = W, now = now, start = start, count = count, t = t}
end

function S.load(key, A, W, now)
  return load_one(S, key, A, W, now)
end

local function usage(c, count)
  local reset = c.t
  if count > 0 then reset = clamp(c.start + c.W) end
  return math.max(c.A - count, 0), reset
end

local function store(c, count)
  local remaining, reset = usage(c, count)
  -- The plan: the window's count after the operation.
  return verdict(true, remaining, reset), count
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

function S.apply(c, count, f)
  f = f or {}
  f[1], f[2] = c.start, count
  return f, ttl_ms((c.start - c.now) + c.W)
end

function S.commit(c, plan, version)
  return commit_one(S, c, plan, version)
end
