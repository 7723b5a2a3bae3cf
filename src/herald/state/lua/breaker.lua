-- A provider's circuit breaker, shared by every worker process (herald.routing.breaker).
-- Each process adds the calls it made since its last report, and learns whether the breaker
-- is open. The breaker opens when, over the last `window` seconds, at least `min_calls`
-- calls were made and at least `rate` of them failed retryably or ambiguously, or at once
-- when the caller says the provider is down (out of credit, suspended); it stays open for
-- `cooldown` seconds, then the provider is tried again with fresh counts.
-- KEYS: [1] <prefix>breaker:<provider> (calls by second: "<sec>:o" and "<sec>:f" fields),
--       [2] <prefix>breaker:<provider>:open (until when, epoch seconds),
--       [3] <prefix>breakers (per provider: "opened_at|until|reason" of its last opening)
-- ARGV: [1] prefix, [2] clock offset, [3] provider, [4] calls that succeeded, [5] calls that
--       failed, [6] 1 = the provider is down: open now, [7] reason, [8] window, [9] min_calls,
--       [10] rate, [11] cooldown
-- Returns {open (0/1), open_until, now, opened_by_this_call (0/1), calls, failures} with
-- times as strings.
local now = clock(ARGV[2])
local provider, ok, failed, down, reason = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7]
local window, min_calls, rate, cooldown = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])

local open_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if open_until > now then
  return {1, tostring(open_until), tostring(now), 0, 0, 0}
end

local sec = math.floor(now)
if ok > 0 then redis.call('HINCRBY', KEYS[1], sec .. ':o', ok) end
if failed > 0 then redis.call('HINCRBY', KEYS[1], sec .. ':f', failed) end
if ok > 0 or failed > 0 then redis.call('EXPIRE', KEYS[1], math.ceil(window) + 60) end

local calls, failures, old = 0, 0, {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local at, kind = string.match(fields[i], '^(%d+):(%a)$')
  local n = tonumber(fields[i + 1])
  if at == nil or tonumber(at) <= now - window then
    old[#old + 1] = fields[i]
  else
    calls = calls + n
    if kind == 'f' then failures = failures + n end
  end
end
if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end

if down or (calls >= min_calls and failures >= rate * calls) then
  local until_ = now + cooldown
  if not down then
    reason = string.format('%d of %d calls failed in %gs', failures, calls, window)
  end
  redis.call('SET', KEYS[2], string.format('%.3f', until_), 'EX', math.ceil(cooldown) + 3600)
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[3], provider, string.format('%.3f|%.3f|%s', now, until_, reason))
  return {1, tostring(until_), tostring(now), 1, calls, failures}
end
return {0, '0', tostring(now), 0, calls, failures}
