-- Withdraw a reminder (upstream cancelled it): mark the reminder, end each pending delivery
-- `cancelled`, and take it off the scheduler. One call, so an expired reminder is never recreated
-- (a reminder hash that is gone stays gone) and no delivery changes state half-way.
-- KEYS: [1] reminder hash, [2] events stream, [3] deadlines zset, [4] scheduled zset
-- ARGV: [1] prefix, [2] reminder id, [3] clock offset (s), [4] events maxlen, [5] reason
-- Returns false for an unknown reminder, else {delivery key, its state afterwards, ...}.
local channels = redis.call('HGET', KEYS[1], 'channels')
if not channels then return false end
local now = clock(ARGV[3])
redis.call('HSETNX', KEYS[1], 'cancelled_at', now)
local out = {}
for channel in string.gmatch(channels, '[^,]+') do
  local member = ARGV[2] .. ':' .. channel
  local dkey = ARGV[1] .. 'd:' .. member
  local state = redis.call('HGET', dkey, 'state')
  if not state then
    -- folded into the record once finished (lua/compact.lua): its outcome leads the summary
    local summary = redis.call('HGET', KEYS[1], 'c:' .. channel)
    if summary then state = string.match(summary, '^[^|]*') end
  end
  if state and PENDING[state] then
    finish(dkey, member, KEYS[2], KEYS[3], ARGV[4], 'cancelled', ARGV[5], now)
    state = 'cancelled'
  end
  redis.call('ZREM', KEYS[4], member)
  out[#out + 1] = member
  out[#out + 1] = state or ''
end
return out
