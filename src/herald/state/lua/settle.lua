-- Record a delivery's outcome (as each provider answer arrives, coalesced with its neighbours).
-- KEYS: [1] delivery hash, [2] events stream, [3] deadlines zset, [4] dead-letter stream,
--       [5] (optional) the provider reference key that points receipts back to the delivery
-- ARGV: [1] prefix, [2] delivery key, [3] clock offset (s), [4] events maxlen, [5] outcome,
--       [6] reason, [7] token ('' when the delivery was never claimed), [8] 1 to give back what
--       the claim took (nothing reached the provider), [9] seconds the reference key lives,
--       [10..] extra field/value pairs to store on the delivery (e.g. provider_ref)
-- With a token, the delivery must be `sending` under that token, or `in_doubt` from that very
-- claim (its lease ended while the request was still out: the provider's answer replaces the
-- doubt); without one it must still be pending. A `dead` delivery is also appended to the
-- dead-letter stream. Returns 1 when recorded, 0 when the delivery had moved on.
local dkey, member = KEYS[1], ARGV[2]
local d = redis.call('HMGET', dkey, 'state', 'token', 'doubt_token', 'channel', 'reminder_id', 'attempts')
if not d[1] then return 0 end
if ARGV[7] ~= '' then
  if d[1] == 'in_doubt' and d[3] == ARGV[7] then
    redis.call('ZREM', ARGV[1] .. 'indoubt', member)
    redis.call('HSET', dkey, 'answered_after_lease', 1)
  elseif d[1] ~= 'sending' or d[2] ~= ARGV[7] then
    return 0
  end
elseif not PENDING[d[1]] then
  return 0
end
redis.call('HDEL', dkey, 'doubt_token')
if ARGV[8] == '1' then release_contact(dkey, member) end
if #ARGV > 9 then redis.call('HSET', dkey, unpack(ARGV, 10)) end
local now = clock(ARGV[3])
finish(dkey, member, KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[6], now)
if KEYS[5] then redis.call('SET', KEYS[5], member, 'EX', tonumber(ARGV[9])) end
if ARGV[5] == 'dead' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'key', member,
             'reminder_id', d[5] or '', 'channel', d[4] or '', 'reason', ARGV[6],
             'attempts', d[6] or '0', 'at', iso(now))
end
return 1
