-- Shared by every strategy script. A script is this prelude, one strategy file and
-- one entry file (single.lua or batch.lua), joined at build time.
--
-- Stored value: an 8-byte version, then the strategy's state bytes exactly as the Rust
-- strategy writes them (core/src/strategy/*.rs); 8 bytes alone mean "no state".
--
-- Numbers: Lua numbers are doubles. Every integer below 2^53 is exact, and a sum or
-- product whose true value is 2^53 or more rounds to 2^53 or more, so comparing a
-- result with BIG tells exactly whether it is exact. Where a result the state or a
-- TTL depends on would not be exact, the script gives up without writing and
-- answers FALLBACK; the storage then takes the limiter's exact generic path.
-- Results that are only clamped to MAX (reset and retry instants) need no check:
-- a rounded value is still past MAX.

local MAX = 9007199254740991 -- Timestamp::MAX, 2^53 - 1 ms
local BIG = 9007199254740992 -- 2^53
local VERSION = 8 -- bytes of the version in front of the state

-- Raised (with error) and turned into the answer by `run`.
local FALLBACK = {fallback = true}

local function corrupt(strategy, reason)
  error({corrupt = strategy .. ': ' .. reason})
end

local function exact(x)
  if x >= BIG then error(FALLBACK) end
  return x
end

-- Integer division of non-negative integers below 2^53: the quotient and remainder,
-- exact (fmod is exact, and so is the division of a multiple).
local function idiv(a, b)
  local r = math.fmod(a, b)
  return (a - r) / b, r
end

local function ceil_div(a, b)
  local q, r = idiv(a, b)
  if r > 0 then q = q + 1 end
  return q
end

local function clamp(ms)
  if ms > MAX then return MAX end
  return ms
end

-- A retry instant: -1 (none) past MAX.
local function instant(ms)
  if ms > MAX then return -1 end
  return ms
end

-- The time-to-live of a write that matters until `until` (given as `until - now`,
-- which is exact where `until` itself may not be), clamped like the storage's
-- compare-and-set path clamps every TTL.
local function ttl_ms(until_minus_now)
  local ttl = math.max(until_minus_now, 0) + 1000
  if ttl > MAX then return MAX end
  return ttl
end

local function int(x)
  return string.format('%d', x)
end

-- The key's state bytes, '' when it has none; an error for a value shorter than its
-- version.
-- Writes of one-value states (fixed window, sliding window, GCRA) waiting for the end
-- of a script that runs several operations on one key (many.lua): key -> {value,
-- ttl}. nil (the other scripts) writes at once.
local deferred = nil

-- Stores `value` under `key` for `px` milliseconds, or keeps it for `flush`.
local function write_state(key, value, px)
  if deferred then
    deferred[key] = {value, px}
  else
    redis.call('SET', key, value, 'PX', px)
  end
end

-- Writes what write_state kept.
local function flush()
  for key, w in pairs(deferred or {}) do
    redis.call('SET', key, w[1], 'PX', w[2])
  end
  deferred = nil
end

local function read_state(key, strategy)
  local kept = deferred and deferred[key]
  local raw = kept and kept[1] or redis.call('GET', key)
  if not raw then return '' end
  if #raw < VERSION then corrupt(strategy, 'stored value shorter than its version') end
  return string.sub(raw, VERSION + 1)
end

-- A verdict: allowed (1/0), remaining, reset_at, retry_at (-1: none).
local function verdict(allowed, remaining, reset_at, retry_at)
  return {allowed and 1 or 0, remaining, reset_at, retry_at or -1}
end

-- Runs `body` and turns a FALLBACK or a corrupt state into the script's answer.
local function run(body)
  local ok, result = pcall(body)
  if ok then return result end
  if type(result) == 'table' then
    if result.fallback then return {-1} end
    if result.corrupt then return redis.error_reply('LIMITER_CORRUPT ' .. result.corrupt) end
  end
  error(result)
end
