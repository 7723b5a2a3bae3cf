-- Take up to ARGV[3] deliveries whose time has come off the scheduled zset.
-- KEYS: [1] scheduled zset.  ARGV: [1] prefix, [2] now (epoch s), [3] limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
