-- Moving window (core/src/strategy/moving_window.rs). State: tag 2, header
-- [head, live_units], then 16-byte records [ts, units], oldest first.
--
-- Amortized O(1) per decision, whatever the log's size: the script reads the header,
-- the newest record and the records it skips or scans (a chunk at a time, with
-- GETRANGE), and writes with SETRANGE and APPEND. Only when the expired records
-- before `head` are at least half the log does it rewrite the value without them,
-- so each record is copied O(1) times overall.
--
-- What a script call has read of a log stays at hand for the rest of the call
-- (`views`): the value's length, the header and each chunk read, kept equal to the
-- stored bytes by every write (all of them are made by S.commit). So a chunk is read
-- once per call, and the operations after the first of a coalesced call (many.lua,
-- batch_many.lua) read nothing.
local S = {}
local NAME = 'moving-window'
local HEADER = 17 -- tag, head, live_units
local RECORD = 16
local BASE = VERSION + HEADER -- offset of record 0 in the stored value
local CHUNK = 64 -- records per GETRANGE

-- Per stored key, during one script call: {size, head, units, chunks = {[first] = bytes
-- of records first .. first + CHUNK - 1 that exist}}.
local views = {}

-- The view of `key`, read (and checked) on first use.
local function view(key)
  local v = views[key]
  if v then return v end
  v = {size = redis.call('STRLEN', key), head = 0, units = 0, chunks = {}}
  if v.size > 0 and v.size < VERSION then corrupt(NAME, 'stored value shorter than its version') end
  if v.size > VERSION then
    local header = redis.call('GETRANGE', key, VERSION, BASE - 1)
    if string.byte(header, 1) ~= 2 then corrupt(NAME, 'unknown tag') end
    local body = v.size - VERSION - 1
    if body < HEADER - 1 or math.fmod(body + 1 - HEADER, RECORD) ~= 0 then
      corrupt(NAME, 'wrong length')
    end
    local head, units = struct.unpack('<I8I8', header, 2)
    if head > (body + 1 - HEADER) / RECORD then corrupt(NAME, 'head past the end') end
    v.head, v.units = head, exact(units)
  end
  views[key] = v
  return v
end

-- Record i (0-based) as ts, units; `c.override` replaces one record's units.
local function record(c, i)
  local first = i - math.fmod(i, CHUNK)
  local data = c.view.chunks[first]
  if not data then
    data = redis.call('GETRANGE', c.key, BASE + first * RECORD, BASE + (first + CHUNK) * RECORD - 1)
    c.view.chunks[first] = data
  end
  local ts, units = struct.unpack('<I8I8', data, (i - first) * RECORD + 1)
  if ts > MAX then corrupt(NAME, 'record time past Timestamp::MAX') end
  if c.override == i then units = c.override_units end
  return ts, exact(units)
end

-- Record i's units set to `units` in the view, as the write just made stored them.
local function set_units(v, i, units)
  local first = i - math.fmod(i, CHUNK)
  local data = v.chunks[first]
  if data then
    local at = (i - first) * RECORD + 8
    v.chunks[first] = string.sub(data, 1, at) .. struct.pack('<I8', units) .. string.sub(data, at + 9)
  end
end

function S.load(key, A, W, now)
  local v = view(key)
  local c = {key = key, A = A, W = W, now = now, len = 0, view = v,
             stored_head = v.head, stored_units = v.units, size = v.size}
  if c.size > VERSION then
    c.len = (c.size - VERSION - HEADER) / RECORD
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

-- The header (head, live units) and time-to-live of a log written in place: at once,
-- or, when the entry script runs several operations (S.defer), once at the end of the
-- call (S.flush), since no one else can read the key in between.
local function finish(v, key, version, px)
  if S.defer then
    v.pending = {version = version, px = px}
  else
    redis.call('SETRANGE', key, 0, header(version, v.head, v.units))
    redis.call('PEXPIRE', key, px)
  end
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
    local v = c.view
    if c.size <= VERSION then
      local first = struct.pack('<I8I8', c.t, plan.hit)
      redis.call('SET', key, header(version, 0, plan.used) .. first, 'PX', px)
      views[key] = {size = BASE + RECORD, head = 0, units = plan.used, chunks = {[0] = first}}
    elseif c.head > 0 and 2 * c.head >= len then
      -- Compaction: drop the expired records before head in one rewrite.
      local tail = redis.call('GETRANGE', key, BASE + c.head * RECORD, -1)
      if merge then
        tail = string.sub(tail, 1, #tail - 8) .. struct.pack('<I8', last_units)
      else
        tail = tail .. struct.pack('<I8I8', c.t, plan.hit)
      end
      redis.call('SET', key, header(version, 0, plan.used) .. tail, 'PX', px)
      views[key] = nil -- every record moved: read afresh when needed again
    else
      if merge then
        redis.call('SETRANGE', key, BASE + (c.len - 1) * RECORD + 8, struct.pack('<I8', last_units))
        set_units(v, c.len - 1, last_units)
      else
        local appended = struct.pack('<I8I8', c.t, plan.hit)
        redis.call('APPEND', key, appended)
        -- The chunk of the new record, when at hand, ends where the value ended.
        local first = c.len - math.fmod(c.len, CHUNK)
        if v.chunks[first] then v.chunks[first] = v.chunks[first] .. appended end
        v.size = v.size + RECORD
      end
      v.head, v.units = c.head, plan.used
      finish(v, key, version, px)
    end
    return ttl
  end
  -- A refund: one record's units and the stored header's live units.
  local ttl = ttl_ms((c.newest - c.now) + c.W)
  redis.call('SETRANGE', key, BASE + plan.index * RECORD + 8, struct.pack('<I8', plan.units))
  set_units(c.view, plan.index, plan.units)
  c.view.units = math.max(c.stored_units - plan.take, 0)
  finish(c.view, key, version, int(ttl))
  return ttl
end

-- Writes the headers and time-to-live that S.defer left for the end of the call.
function S.flush()
  for key, v in pairs(views) do
    if v.pending then
      redis.call('SETRANGE', key, 0, header(v.pending.version, v.head, v.units))
      redis.call('PEXPIRE', key, v.pending.px)
      v.pending = nil
    end
  end
end
