-- An operator settles an in-doubt delivery: `sent` (the provider had it) or `failed` (it did not).
-- KEYS: [1] delivery hash, [2] events stream, [3] deadlines zset
-- ARGV: [1] prefix, [2] delivery key, [3] now, [4] now ISO, [5] events maxlen, [6] outcome,
--       [7] reason
-- Returns 1 when settled, 0 when the delivery is not in doubt.
if redis.call('HGET', KEYS[1], 'state') ~= 'in_doubt' then return 0 end
redis.call('ZREM', ARGV[1] .. 'indoubt', ARGV[2])
redis.call('HSET', KEYS[1], 'resolved_from', 'in_doubt')
finish(KEYS[1], ARGV[2], KEYS[2], KEYS[3], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[3]), ARGV[4])
redis.call('ZREM', ARGV[1] .. 'indoubt', ARGV[2])
return 1
