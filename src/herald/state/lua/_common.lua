-- Shared by every herald script (prepended when the script is loaded).
-- A delivery hash lives at <prefix>d:<delivery key>; the prefix is passed as ARGV[1], and
-- <prefix>leases (claimed deliveries by lease end), <prefix>indoubt (in-doubt deliveries) and
-- <prefix>scheduled are derived from it (standalone Redis only, as Celery's Redis transport
-- requires).
--
-- Time: every script reads Redis's own clock (TIME) plus an offset its caller passes (0 in
-- production; tests shift the clocks of all processes with it), so hosts whose clocks differ
-- still agree on holds, expiry, send windows, caps and leases.
--
-- Who is responsible for a pending delivery, and so its deadline in <prefix>deadlines (the
-- reconciler re-publishes a pending delivery whose deadline passed and that waits in no
-- scheduler set):
--   stored, not yet published      -> the publisher: now + hold seconds, pushed to now + the
--                                     visibility timeout once the message is published
--   published, waiting in a queue  -> the broker: publication + the visibility timeout
--   taken by a worker process      -> that process (field `holder`): now + hold seconds,
--                                     renewed while it works on it
--   waiting in <prefix>scheduled   -> the scheduler: due + the visibility timeout
--   claimed (`sending`)            -> its lease (renewed while the request is in flight)

local PENDING = {accepted = true, scheduled = true, retrying = true}

-- Redis's clock plus the caller's offset, in seconds.
local function clock(offset)
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + (tonumber(offset) or 0)
end

-- An epoch time as ISO-8601 UTC with milliseconds (2026-12-06T14:58:21.607+00:00), as
-- herald.store.iso writes it (truncated to the millisecond, never rounded).
local function iso(ts)
  local secs = math.floor(ts)
  local ms = math.floor((ts - secs) * 1000)
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468  -- days from 0000-03-01 (civil_from_days, proleptic Gregorian)
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00', year, month, day,
                       math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, ms)
end

-- Record the final outcome of a delivery and append it to the events stream.
local function finish(dkey, member, events, deadlines, maxlen, outcome, reason, now)
  redis.call('HSET', dkey, 'state', outcome, 'outcome', outcome, 'reason', reason,
             'updated_at', now, 'finished_at', now)
  if outcome == 'in_doubt' then
    -- kept as `doubt_token`: the worker that holds the claim may still record its answer
    local token = redis.call('HGET', dkey, 'token')
    if token then redis.call('HSET', dkey, 'doubt_token', token) end
    redis.call('ZADD', ARGV[1] .. 'indoubt', now, member)
  end
  redis.call('HDEL', dkey, 'token', 'lease_until', 'holder')
  redis.call('ZREM', deadlines, member)
  redis.call('ZREM', ARGV[1] .. 'leases', member)
  local f = redis.call('HMGET', dkey, 'reminder_id', 'account_id', 'channel', 'kind', 'category')
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
             'key', member, 'reminder_id', f[1] or '', 'account_id', f[2] or '',
             'channel', f[3] or '', 'kind', f[4] or '', 'category', f[5] or '',
             'outcome', outcome, 'reason', reason, 'at', iso(now))
end

-- Give back what a claim took for a contact that did not happen (nothing reached the
-- provider): the account's cap entry and the duplicate-window mark, when they are this
-- delivery's. Caps and the duplicate window count contacts, not attempts.
local function release_contact(dkey, member)
  local d = redis.call('HMGET', dkey, 'cap_key', 'recent_key')
  if d[1] and d[1] ~= '' then redis.call('ZREM', d[1], member) end
  if d[2] and d[2] ~= '' then
    local mark = redis.call('GET', d[2])
    if mark and string.sub(mark, -(#member + 1)) == ' ' .. member then redis.call('DEL', d[2]) end
  end
  redis.call('HDEL', dkey, 'cap_key', 'recent_key')
end

-- Put a delivery aside in the scheduler until `due`, waiting in `state` (`scheduled`: a time
-- was asked for; `retrying`: a failure, counted towards the retry deadline), with a new deadline
-- `grace` after it is due. The caller has checked the delivery may move.
local function set_aside(dkey, member, scheduled, deadlines, due, reason, now, grace, state)
  redis.call('HDEL', dkey, 'token', 'lease_until', 'holder')
  redis.call('ZREM', ARGV[1] .. 'leases', member)
  if state == 'retrying' then
    redis.call('HINCRBY', dkey, 'retries', 1)
    redis.call('HSETNX', dkey, 'first_failed_at', now)
  end
  redis.call('HSET', dkey, 'state', state, 'due', due, 'reason', reason, 'updated_at', now)
  redis.call('ZADD', scheduled, due, member)
  redis.call('ZADD', deadlines, tonumber(due) + tonumber(grace), member)
end
