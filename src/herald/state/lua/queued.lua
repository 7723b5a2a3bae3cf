-- Deliveries whose message was just published: the broker is now responsible for them.
-- KEYS: [1] deadlines zset
-- ARGV: [1] prefix, [2] clock offset (s), [3] the visibility timeout (s): how long a message may
--       wait in its queue before the reconciler presumes it lost, [4] the publishing process's
--       holder id ('' for a producer, which holds nothing), [5..] delivery keys
-- A delivery still pending, not held by another process (a worker may have taken it already:
-- its hold stands), gets the deadline now + the visibility timeout. Returns how many.
local now = clock(ARGV[2])
local deadline = now + tonumber(ARGV[3])
local moving = {}
for i = 5, #ARGV do
  local member = ARGV[i]
  local dkey = ARGV[1] .. 'd:' .. member
  local d = redis.call('HMGET', dkey, 'state', 'holder')
  if d[1] and PENDING[d[1]] and (not d[2] or d[2] == ARGV[4]) then
    if d[2] then redis.call('HDEL', dkey, 'holder') end
    table.insert(moving, deadline)
    table.insert(moving, member)
  end
end
if #moving > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(moving)) end
return #moving / 2
