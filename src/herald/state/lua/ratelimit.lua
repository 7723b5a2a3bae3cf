-- Cluster-wide rate limits: GCRA (the generic cell rate algorithm), on Redis's clock.
-- One call takes `cost` units from every limit named in KEYS at once (e.g. the provider's and
-- the sender number's), or from none of them.
-- KEYS: one theoretical-arrival-time key per limit
-- ARGV: [1] cost (units: an SMS costs its segments), [2] the longest wait the caller will
--       accept, in microseconds, [3] now in microseconds ('' = Redis's TIME, as in production;
--       tests inject a clock), then per key: [2 + 2i] emission interval in microseconds per
--       unit, [3 + 2i] burst tolerance in microseconds
-- Returns {granted, wait_us}: granted = 1 when the units are reserved and may be used after
-- wait_us (0: now); granted = 0 when the wait would exceed the longest acceptable wait — then
-- nothing is reserved and wait_us says when to come back.
local cost = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local wait, tats = 0, {}
for i = 1, #KEYS do
  local interval, tolerance = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - tolerance - interval
  if allow_at - now > wait then wait = allow_at - now end
  tats[i] = new_tat
end
if wait > max_wait then return {0, wait} end
for i = 1, #KEYS do
  local tolerance = tonumber(ARGV[3 + 2 * i])
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now + tolerance) / 1000) + 1000)
end
return {1, wait}
