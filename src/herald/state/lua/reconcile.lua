-- The reconciler's pass: deliveries whose deadline passed, decided per state, atomically.
-- KEYS: [1] deadlines zset, [2] scheduled zset, [3] the reconciler's counters (hash)
-- ARGV: [1] prefix, [2] clock offset (s), [3] budget (at most this many to re-publish),
--       [4] scan (at most this many overdue entries looked at), [5] grace (s): how long a
--       delivery waiting in the scheduler has after it is due (the visibility timeout),
--       [6] publish grace (s): a re-published delivery's deadline until its message is out
--       (queued.lua then moves it), [7] how long in-doubt deliveries stay listed (s)
-- Per overdue entry, by the delivery's state:
--   gone (expired from Redis) or finished        -> the stale entry is removed
--   sending, lease still running                 -> deadline = the lease's end (never touched)
--   sending, lease ended                         -> left to the scheduler's lease sweep (put
--                                                   back in the leases zset if missing), deadline
--                                                   pushed forward
--   pending and waiting in the scheduled zset    -> not lost: deadline = max(due, now) + grace
--   pending and nowhere else                     -> lost: its message never went out, the broker
--                                                   lost it, or the process that held it died
--                                                   (its hold was not renewed); the hold is
--                                                   cleared, deadline = now + publish grace,
--                                                   and its key returned to be re-published
-- Moving the deadline in the same call is what keeps two reconcilers from publishing the same
-- key twice. In-doubt deliveries listed longer than the retention are dropped from the list.
-- Returns {keys to re-publish, {removed, waiting, leased, still overdue}}.
local deadlines, scheduled = KEYS[1], KEYS[2]
local prefix, now = ARGV[1], clock(ARGV[2])
local budget, scan, grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local publish, removed, waiting, leased = {}, 0, 0, 0
local overdue = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, scan)
for _, member in ipairs(overdue) do
  if #publish >= budget then break end
  local dkey = prefix .. 'd:' .. member
  local d = redis.call('HMGET', dkey, 'state', 'lease_until')
  if not d[1] then
    redis.call('ZREM', deadlines, member)
    removed = removed + 1
  elseif d[1] == 'sending' then
    local lease = tonumber(d[2] or '') or 0
    if lease > now then
      redis.call('ZADD', deadlines, lease, member)
    else
      redis.call('ZADD', prefix .. 'leases', 'NX', lease, member)
      redis.call('ZADD', deadlines, now + grace, member)
    end
    leased = leased + 1
  elseif not PENDING[d[1]] then
    redis.call('ZREM', deadlines, member)
    removed = removed + 1
  else
    local due = redis.call('ZSCORE', scheduled, member)
    if due then
      redis.call('ZADD', deadlines, math.max(tonumber(due), now) + grace, member)
      waiting = waiting + 1
    else
      redis.call('ZADD', deadlines, now + tonumber(ARGV[6]), member)
      redis.call('HDEL', dkey, 'holder')
      redis.call('HSET', dkey, 'reconciled_at', now)
      redis.call('HINCRBY', dkey, 'reconciled', 1)
      table.insert(publish, member)
    end
  end
end
if #publish > 0 then redis.call('HINCRBY', KEYS[3], 'republished', #publish) end
redis.call('ZREMRANGEBYSCORE', prefix .. 'indoubt', '-inf', now - tonumber(ARGV[7]))
local left = redis.call('ZCOUNT', deadlines, '-inf', now)
return {publish, {removed, waiting, leased, left}}
