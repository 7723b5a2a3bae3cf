-- Record a provider's delivery receipt on a sent delivery (it is not a second outcome).
-- KEYS: [1] delivery hash, [2] events stream
-- ARGV: [1] prefix, [2] delivery key, [3] receipt (delivered | undelivered), [4] error code,
--       [5] clock offset (s), [6] events maxlen
-- Returns 1 when recorded, 0 when the delivery is not `sent`.
local d = redis.call('HMGET', KEYS[1], 'outcome', 'reminder_id', 'account_id', 'channel')
if d[1] ~= 'sent' then return 0 end
local now = clock(ARGV[5])
redis.call('HSET', KEYS[1], 'receipt', ARGV[3], 'receipt_code', ARGV[4], 'receipt_at', now)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'key', ARGV[2],
           'reminder_id', d[2] or '', 'account_id', d[3] or '', 'channel', d[4] or '',
           'receipt', ARGV[3], 'code', ARGV[4], 'at', iso(now))
return 1
