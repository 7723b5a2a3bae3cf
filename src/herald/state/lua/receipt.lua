-- Record a provider's delivery receipt on a sent delivery (it is not a second outcome).
-- KEYS: [1] delivery hash, [2] events stream, [3] its reminder's record
-- ARGV: [1] prefix, [2] delivery key, [3] receipt (delivered | undelivered), [4] error code,
--       [5] clock offset (s), [6] events maxlen, [7] the delivery's channel
-- A delivery compacted since it was sent (its hash folded into the record's `c:<channel>`
-- summary: lua/compact.lua) still gets its receipt in the events stream, for the ledger.
-- Returns 1 when recorded, 0 when the delivery is not `sent`.
local d = redis.call('HMGET', KEYS[1], 'outcome', 'reminder_id', 'account_id', 'channel')
if not d[1] then
  local r = redis.call('HMGET', KEYS[3], 'c:' .. ARGV[7], 'account_id')
  if not r[1] or string.sub(r[1], 1, 5) ~= 'sent|' then return 0 end
  d = {'sent', string.sub(ARGV[2], 1, #ARGV[2] - #ARGV[7] - 1), r[2], ARGV[7]}
end
if d[1] ~= 'sent' then return 0 end
local now = clock(ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'receipt', ARGV[3], 'receipt_code', ARGV[4], 'receipt_at', now)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'key', ARGV[2],
           'reminder_id', d[2] or '', 'account_id', d[3] or '', 'channel', d[4] or '',
           'receipt', ARGV[3], 'code', ARGV[4], 'at', iso(now))
return 1
