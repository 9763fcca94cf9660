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
local function read_state(key, strategy)
  local raw = redis.call('GET', key)
  if not raw then return '' end
  if #raw < VERSION then corrupt(strategy, 'stored value shorter than its version') end
  return string.sub(raw, VERSION + 1)
end

-- One-value states (fixed window, sliding window, GCRA) split their rules in four, so
-- that a script running several operations on one key (many.lua) decodes the stored
-- value once and writes it once:
--   S.decode(state, A, W, B)   the state's fields (validated), nil for no state
--   S.at(key, f, A, W, now, B) the context of an operation at `now` on fields f
--   S.apply(c, plan, f)        the fields a plan leaves (written into f, or a new
--                              table when f is nil), and the write's TTL
--   S.encode(f)                the fields as state bytes
-- load and commit, for one operation, are these composed:
local function load_one(S, key, A, W, now, B)
  return S.at(key, S.decode(read_state(key, S.NAME), A, W, B), A, W, now, B)
end

local function commit_one(S, c, plan, version)
  local f, ttl = S.apply(c, plan)
  redis.call('SET', c.key, version .. S.encode(f), 'PX', int(ttl))
  return ttl
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
