-- An operator settles an in-doubt delivery: `sent` (the provider had it) or `failed` (it did not).
-- KEYS: [1] delivery hash, [2] events stream, [3] deadlines zset
-- ARGV: [1] prefix, [2] delivery key, [3] clock offset (s), [4] events maxlen, [5] outcome,
--       [6] reason
-- Returns 1 when settled, 0 when the delivery is not in doubt.
if redis.call('HGET', KEYS[1], 'state') ~= 'in_doubt' then return 0 end
redis.call('ZREM', ARGV[1] .. 'indoubt', ARGV[2])
redis.call('HSET', KEYS[1], 'resolved_from', 'in_doubt')
redis.call('HDEL', KEYS[1], 'doubt_token')
finish(KEYS[1], ARGV[2], KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[6], clock(ARGV[3]))
redis.call('ZREM', ARGV[1] .. 'indoubt', ARGV[2])
return 1
