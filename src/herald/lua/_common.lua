-- Shared by every herald script (prepended when the script is loaded).
-- A delivery hash lives at <prefix>d:<delivery key>; the prefix is passed as ARGV[1], and
-- <prefix>leases (claimed deliveries by lease end) and <prefix>indoubt (in-doubt deliveries)
-- are derived from it (standalone Redis only, as Celery's Redis transport requires).

local PENDING = {accepted = true, scheduled = true, retrying = true}

-- Record the final outcome of a delivery and append it to the events stream.
local function finish(dkey, member, events, deadlines, maxlen, outcome, reason, now, now_iso)
  redis.call('HSET', dkey, 'state', outcome, 'outcome', outcome, 'reason', reason,
             'updated_at', now, 'finished_at', now)
  redis.call('HDEL', dkey, 'token', 'lease_until')
  redis.call('ZREM', deadlines, member)
  redis.call('ZREM', ARGV[1] .. 'leases', member)
  if outcome == 'in_doubt' then redis.call('ZADD', ARGV[1] .. 'indoubt', now, member) end
  local f = redis.call('HMGET', dkey, 'reminder_id', 'account_id', 'channel', 'kind', 'category')
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
             'key', member, 'reminder_id', f[1] or '', 'account_id', f[2] or '',
             'channel', f[3] or '', 'kind', f[4] or '', 'category', f[5] or '',
             'outcome', outcome, 'reason', reason, 'at', now_iso)
end

-- Put a delivery aside in the scheduler until `due`, waiting in `state` (`scheduled`: a time
-- was asked for; `retrying`: a failure, counted towards the retry deadline), with a new deadline
-- `grace` after it is due. The caller has checked the delivery may move.
local function set_aside(dkey, member, scheduled, deadlines, due, reason, now, grace, state)
  redis.call('HDEL', dkey, 'token', 'lease_until')
  redis.call('ZREM', ARGV[1] .. 'leases', member)
  if state == 'retrying' then
    redis.call('HINCRBY', dkey, 'retries', 1)
    redis.call('HSETNX', dkey, 'first_failed_at', now)
  end
  redis.call('HSET', dkey, 'state', state, 'due', due, 'reason', reason, 'updated_at', now)
  redis.call('ZADD', scheduled, due, member)
  redis.call('ZADD', deadlines, tonumber(due) + tonumber(grace), member)
end
