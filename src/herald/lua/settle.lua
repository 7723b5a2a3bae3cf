-- Record a delivery's outcome.
-- KEYS: [1] delivery hash, [2] events stream, [3] deadlines zset, [4] dead-letter stream
-- ARGV: [1] prefix, [2] delivery key, [3] now, [4] now ISO, [5] events maxlen,
--       [6] outcome, [7] reason, [8] token ('' when the delivery was never claimed),
--       [9..] extra field/value pairs to store on the delivery (e.g. provider_ref)
-- With a token, the delivery must be `sending` under that token; without one it must still
-- be pending. A `dead` delivery is also appended to the dead-letter stream.
-- Returns 1 when recorded, 0 when the delivery had moved on (nothing changed).
local dkey = KEYS[1]
local d = redis.call('HMGET', dkey, 'state', 'token', 'channel', 'reminder_id', 'attempts')
if not d[1] then return 0 end
if ARGV[8] ~= '' then
  if d[1] ~= 'sending' or d[2] ~= ARGV[8] then return 0 end
elseif not PENDING[d[1]] then
  return 0
end
if #ARGV > 8 then redis.call('HSET', dkey, unpack(ARGV, 9)) end
finish(dkey, ARGV[2], KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[3]), ARGV[4])
if ARGV[6] == 'dead' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'key', ARGV[2],
             'reminder_id', d[4] or '', 'channel', d[3] or '', 'reason', ARGV[7],
             'attempts', d[5] or '0', 'at', ARGV[4])
end
return 1
