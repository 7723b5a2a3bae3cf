-- Deliveries whose lease ended without a result: the process that claimed them died (or lost
-- Redis for longer than the lease) between the claim and the record. The provider may have
-- accepted them, so they are `in_doubt` (or, for a category configured to resend, back to
-- `retrying`, due now).
-- KEYS: [1] events stream, [2] deadlines zset, [3] scheduled zset
-- ARGV: [1] prefix, [2] clock offset (s), [3] events maxlen, [4] limit, [5] comma-separated
--       categories that end in_doubt, [6] grace (s): the resent one's new deadline after it is due
-- A resend counts as a retry (towards HERALD_RETRY_DEADLINE), so a delivery that kills its
-- worker each time ends `dead` instead of going round for ever.
-- Returns the delivery keys it settled.
local now = clock(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'leases', '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local done = {}
for _, member in ipairs(due) do
  local dkey = ARGV[1] .. 'd:' .. member
  local d = redis.call('HMGET', dkey, 'state', 'lease_until', 'category')
  redis.call('ZREM', ARGV[1] .. 'leases', member)
  if d[1] == 'sending' and tonumber(d[2] or '0') <= now then
    if string.find(',' .. ARGV[5] .. ',', ',' .. (d[3] or '') .. ',', 1, true) then
      finish(dkey, member, KEYS[1], KEYS[2], ARGV[3], 'in_doubt',
             'the lease ended without a result: the worker stopped after claiming it', now)
    else
      set_aside(dkey, member, KEYS[3], KEYS[2], now,
                'the lease ended without a result: resent by policy', now, ARGV[6], 'retrying')
    end
    table.insert(done, member)
  end
end
return done
