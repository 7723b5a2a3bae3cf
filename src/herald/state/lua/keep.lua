-- A live worker process renews what it holds: the deadlines of the deliveries it took and the
-- leases of those it claimed whose requests are in flight.
-- KEYS: [1] deadlines zset, [2] leases zset
-- ARGV: [1] prefix, [2] clock offset (s), [3] hold (s), [4] the process's holder id, then
--       pairs: delivery key, token (the claim's; '' for a delivery taken and not claimed)
-- Returns the delivery keys no longer held (finished, set aside, or taken over): the process
-- stops renewing them.
local now = clock(ARGV[2])
local until_ = now + tonumber(ARGV[3])
local lost = {}
for i = 5, #ARGV, 2 do
  local member, token = ARGV[i], ARGV[i + 1]
  local dkey = ARGV[1] .. 'd:' .. member
  local d = redis.call('HMGET', dkey, 'state', 'token', 'holder')
  if token == '' and d[1] and PENDING[d[1]] and d[3] == ARGV[4] then
    redis.call('ZADD', KEYS[1], 'XX', until_, member)
  elseif token ~= '' and d[1] == 'sending' and d[2] == token then
    redis.call('HSET', dkey, 'lease_until', until_)
    redis.call('ZADD', KEYS[2], until_, member)
    redis.call('ZADD', KEYS[1], until_, member)
  else
    table.insert(lost, member)
  end
end
return lost
