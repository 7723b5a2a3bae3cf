-- Put a dead delivery back to work.
-- KEYS: [1] delivery hash, [2] deadlines zset
-- ARGV: [1] prefix, [2] delivery key, [3] clock offset (s), [4] publish grace (s): the deadline
--       until the replayed message is published (queued.lua then moves it)
-- Returns 1 when the delivery is pending again, 0 when it was not dead (nothing changed).
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'dead' then return 0 end
local now = clock(ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'accepted', 'reason', 'replayed from the dead letters',
           'updated_at', now, 'retries', 0)
redis.call('HDEL', KEYS[1], 'outcome', 'finished_at', 'first_failed_at', 'due')
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
return 1
