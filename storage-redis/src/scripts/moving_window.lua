-- Moving window (core/src/strategy/moving_window.rs). State: tag 2, header
-- [head, live_units], then 16-byte records [ts, units], oldest first.
--
-- Amortized O(1) per decision, whatever the log's size: the script reads the header,
-- the newest record and the records it skips or scans (a chunk at a time, with
-- GETRANGE), and writes with SETRANGE and APPEND. Only when the expired records
-- before `head` are at least half the log does it rewrite the value without them,
-- so each record is copied O(1) times overall.
local S = {}
local NAME = 'moving-window'
local HEADER = 17 -- tag, head, live_units
local RECORD = 16
local BASE = VERSION + HEADER -- offset of record 0 in the stored value
local CHUNK = 64 -- records per GETRANGE

-- Record i (0-based) as ts, units; `c.override` replaces one record's units.
local function record(c, i)
  local first = i - math.fmod(i, CHUNK)
  if c.chunk ~= first then
    c.data = redis.call('GETRANGE', c.key, BASE + first * RECORD, BASE + (first + CHUNK) * RECORD - 1)
    c.chunk = first
  end
  local ts, units = struct.unpack('<I8I8', c.data, (i - first) * RECORD + 1)
  if ts > MAX then corrupt(NAME, 'record time past Timestamp::MAX') end
  if c.override == i then units = c.override_units end
  return ts, exact(units)
end

function S.load(key, A, W, now)
  local c = {key = key, A = A, W = W, now = now, len = 0, chunk = -1,
             stored_head = 0, stored_units = 0, size = redis.call('STRLEN', key)}
  if c.size > 0 and c.size < VERSION then corrupt(NAME, 'stored value shorter than its version') end
  if c.size > VERSION then
    local header = redis.call('GETRANGE', key, VERSION, BASE - 1)
    if string.byte(header, 1) ~= 2 then corrupt(NAME, 'unknown tag') end
    local body = c.size - VERSION - 1
    if body < HEADER - 1 or math.fmod(body + 1 - HEADER, RECORD) ~= 0 then
      corrupt(NAME, 'wrong length')
    end
    c.len = (body + 1 - HEADER) / RECORD
    local head, units = struct.unpack('<I8I8', header, 2)
    if head > c.len then corrupt(NAME, 'head past the end') end
    c.stored_head, c.stored_units = head, exact(units)
  end
  -- Effective time: the later of now and the newest record.
  c.t = now
  if c.len > 0 then
    c.newest = record(c, c.len - 1)
    c.t = math.max(now, c.newest)
  end
  -- Skip the expired records from head on.
  c.head, c.used = c.stored_head, c.stored_units
  while c.head < c.len do
    local ts, units = record(c, c.head)
    if ts + W > c.t then break end
    if units > c.used then corrupt(NAME, 'live units below the units of the records') end
    c.used = c.used - units
    c.head = c.head + 1
  end
  return c
end

-- remaining and reset_at with `used` units counted.
local function usage(c, used)
  local reset = c.t
  if used > 0 then
    for i = c.len - 1, c.head, -1 do
      local ts, units = record(c, i)
      if units > 0 then
        reset = ts + c.W
        break
      end
    end
  end
  return math.max(c.A - used, 0), clamp(reset)
end

function S.hit(c, cost, test)
  local remaining, reset = usage(c, c.used)
  if cost > c.A then return verdict(false, remaining, reset) end
  if cost > remaining then
    local need = exact(c.used + cost) - c.A
    local freed = 0
    for i = c.head, c.len - 1 do
      local ts, units = record(c, i)
      freed = exact(freed + units)
      if freed >= need then return verdict(false, remaining, reset, instant(ts + c.W)) end
    end
    return verdict(false, remaining, reset)
  end
  if test or cost == 0 then return verdict(true, remaining, reset) end
  local used = exact(c.used + cost)
  -- The hit is recorded at t, the newest instant: its record is the last one.
  return verdict(true, math.max(c.A - used, 0), clamp(c.t + c.W)), {hit = cost, used = used}
end

function S.refund(c, cost, at)
  local remaining, reset = usage(c, c.used)
  if at + c.W <= c.t then return verdict(true, remaining, reset) end
  for i = c.len - 1, c.head, -1 do
    local ts, units = record(c, i)
    if ts < at then break end
    if ts == at then
      local take = math.min(units, cost)
      if take > c.used then corrupt(NAME, 'live units below the units of the records') end
      if take == 0 then break end
      c.override, c.override_units = i, units - take
      remaining, reset = usage(c, math.max(c.used - take, 0))
      return verdict(true, remaining, reset), {index = i, units = units - take, take = take}
    end
  end
  return verdict(true, remaining, reset)
end

local function header(version, head, units)
  return version .. '\2' .. struct.pack('<I8I8', head, units)
end

function S.commit(c, plan, version)
  local key = c.key
  if plan.hit then
    local ttl = ttl_ms((c.t - c.now) + c.W)
    local px = int(ttl)
    local merge = c.len > 0 and c.newest == c.t
    local last_units = 0
    if merge then
      local _, units = record(c, c.len - 1)
      last_units = exact(units + plan.hit)
    end
    local len = c.len
    if not merge then len = len + 1 end
    if c.size <= VERSION then
      redis.call('SET', key, header(version, 0, plan.used) .. struct.pack('<I8I8', c.t, plan.hit), 'PX', px)
    elseif c.head > 0 and 2 * c.head >= len then
      -- Compaction: drop the expired records before head in one rewrite.
      local tail = redis.call('GETRANGE', key, BASE + c.head * RECORD, -1)
      if merge then
        tail = string.sub(tail, 1, #tail - 8) .. struct.pack('<I8', last_units)
      else
        tail = tail .. struct.pack('<I8I8', c.t, plan.hit)
      end
      redis.call('SET', key, header(version, 0, plan.used) .. tail, 'PX', px)
    else
      if merge then
        redis.call('SETRANGE', key, BASE + (c.len - 1) * RECORD + 8, struct.pack('<I8', last_units))
      else
        redis.call('APPEND', key, struct.pack('<I8I8', c.t, plan.hit))
      end
      redis.call('SETRANGE', key, 0, header(version, c.head, plan.used))
      redis.call('PEXPIRE', key, px)
    end
    return ttl
  end
  -- A refund: one record's units and the stored header's live units.
  local ttl = ttl_ms((c.newest - c.now) + c.W)
  redis.call('SETRANGE', key, BASE + plan.index * RECORD + 8, struct.pack('<I8', plan.units))
  redis.call('SETRANGE', key, 0, header(version, c.stored_head, math.max(c.stored_units - plan.take, 0)))
  redis.call('PEXPIRE', key, int(ttl))
  return ttl
end
