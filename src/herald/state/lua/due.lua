-- Take up to ARGV[3] deliveries whose time has come off the scheduled zset.
-- KEYS: [1] scheduled zset, [2] deadlines zset
-- ARGV: [1] prefix, [2] clock offset (s), [3] limit, [4] publish grace (s): the deliveries'
--       deadline until their messages are published (queued.lua then moves it)
local now = clock(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  for _, member in ipairs(due) do redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[4]), member) end
end
return due
