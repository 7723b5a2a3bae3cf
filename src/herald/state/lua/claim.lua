-- The decision to send, immediately before the provider call (inside the delivery's send slot,
-- after its rate-limit token: nothing but the request comes after it).
-- KEYS: [1] delivery hash, [2] reminder record, [3] events stream, [4] deadlines zset,
--       [5] the channel's opt-out set, [6] the account's holds (hold id -> compact JSON, and
--       '^<category>' -> '<began> <hold id>', the marks), [7] the suppression store's marker,
--       [8] the account's contact count for this channel and category (frequency caps),
--       [9] the last delivery of this kind to the account on this channel (duplicate window)
-- ARGV: [1] prefix, [2] delivery key, [3] clock offset (s), [4] token, [5] lease (s),
--       [6] events maxlen, [7] cap rules ("count,seconds;..." or ""), [8] cap action
--       (defer | drop), [9] duplicate window in seconds (0: off), [10] the recipient's send
--       windows as "open,close;open,close..." in epoch seconds ('' when none applies),
--       [11..] the addresses to be used
-- A delivery `sending` under the same token may be claimed again (before a quick retry, after
-- the provider refused the request): every check runs again.
-- Returns {verdict, detail, now, addresses the claim allows...}: claimed | missing |
-- not_pending(state) | cancelled | expired | suppressed(hold) | opted_out | unknown_suppression |
-- early(when due) | window(next opening, '' when beyond the windows given) | capped(when
-- allowed) | over_cap(when allowed, finished as capped) | duplicate(the earlier delivery).
-- A cancelled, expired, suppressed, opted-out, duplicate or over-cap delivery is finished here,
-- atomically. Without the marker nothing is claimed (fail closed). Only the addresses not opted
-- out are returned: a push goes to those tokens alone.
local dkey, rkey, events, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, maxlen = ARGV[2], ARGV[6]
local now = clock(ARGV[3])
local d = redis.call('HMGET', dkey, 'state', 'expires_at', 'not_before', 'category', 'accepted_at', 'due', 'token')
if not d[1] then return {'missing', '', tostring(now)} end
-- a claim again under its own token, before a quick retry of a request the provider refused
local again = d[1] == 'sending' and d[7] == ARGV[4]
if not PENDING[d[1]] and not again then return {'not_pending', d[1], tostring(now)} end
if again then release_contact(dkey, member) end  -- the refused request was no contact
if redis.call('HEXISTS', rkey, 'cancelled_at') == 1 then
  finish(dkey, member, events, deadlines, maxlen, 'cancelled', 'withdrawn upstream', now)
  return {'cancelled', '', tostring(now)}
end
if d[2] and d[2] ~= '' and now >= tonumber(d[2]) then
  finish(dkey, member, events, deadlines, maxlen, 'expired', 'expired before it could be sent', now)
  return {'expired', '', tostring(now)}
end
if redis.call('EXISTS', KEYS[7]) == 0 then return {'unknown_suppression', '', tostring(now)} end
local category = d[4] or ''
local blocking, blocking_id, mark = nil, nil, nil
local all = redis.call('HGETALL', KEYS[6])
for i = 1, #all, 2 do
  local field, raw = all[i], all[i + 1]
  if string.sub(field, 1, 1) == '^' then
    if field == '^' .. category then mark = raw end
  else
    local h = cjson.decode(raw)
    local lasts = (h['until'] == nil or h['until'] == cjson.null or now < tonumber(h['until']))
    local cats = h['categories']
    if cats == nil or cats == cjson.null then cats = {'collection'} end
    if lasts then
      for _, c in ipairs(cats) do
        if c == category and (blocking == nil or h['at'] > blocking['at']) then
          blocking, blocking_id = h, field
        end
      end
    end
  end
end
if blocking ~= nil then
  local source = 'operator ' .. (blocking['by'] or '?')
  if blocking['agreement'] ~= nil and blocking['agreement'] ~= cjson.null then
    source = 'agreement ' .. blocking['agreement']
  end
  finish(dkey, member, events, deadlines, maxlen, 'suppressed',
         'held: hold ' .. blocking_id .. ' (' .. source .. '): ' .. blocking['reason'], now)
  return {'suppressed', blocking_id, tostring(now)}
end
if category == 'collection' and mark then
  local began, hold = string.match(mark, '^(%S+) (.+)$')
  -- began at the very millisecond of the acceptance: decided before it too (the safe side)
  if began and tonumber(began) >= tonumber(d[5] or '0') then
    finish(dkey, member, events, deadlines, maxlen, 'suppressed',
           'superseded: decided before hold ' .. hold .. ' began', now)
    return {'suppressed', hold, tostring(now)}
  end
end
local reachable = {}
for i = 11, #ARGV do
  if redis.call('SISMEMBER', KEYS[5], ARGV[i]) == 0 then table.insert(reachable, ARGV[i]) end
end
if #ARGV >= 11 and #reachable == 0 then
  finish(dkey, member, events, deadlines, maxlen, 'opted_out', 'the recipient opted out of this channel', now)
  return {'opted_out', '', tostring(now)}
end
if d[3] and d[3] ~= '' and now < tonumber(d[3]) then return {'early', d[3], tostring(now)} end
if d[6] and d[6] ~= '' and (d[1] == 'scheduled' or d[1] == 'retrying') and now < tonumber(d[6]) then
  return {'early', d[6], tostring(now)}  -- a stale message for a delivery the scheduler still holds
end
if ARGV[10] ~= '' then
  local inside, next_open = false, nil
  for open, close in string.gmatch(ARGV[10], '([%d%.]+),([%d%.]+)') do
    open, close = tonumber(open), tonumber(close)
    if now >= open and now < close then inside = true end
    if open > now and (next_open == nil or open < next_open) then next_open = open end
  end
  if not inside then return {'window', next_open and tostring(next_open) or '', tostring(now)} end
end
local dup_window = tonumber(ARGV[9])
if dup_window > 0 then
  local last = redis.call('GET', KEYS[9])
  local at, earlier = nil, nil
  if last then at, earlier = string.match(last, '^(%S+) (.+)$') end
  if earlier and earlier ~= member and now - tonumber(at) < dup_window then
    finish(dkey, member, events, deadlines, maxlen, 'duplicate',
           'the same kind went to this account on this channel recently (' .. earlier .. ')', now)
    return {'duplicate', earlier, tostring(now)}
  end
end
local longest = 0
if ARGV[7] ~= '' then
  local allowed_at = nil
  for rule in string.gmatch(ARGV[7], '[^;]+') do
    local count, window = string.match(rule, '(%d+),(%d+)')
    count, window = tonumber(count), tonumber(window)
    if window > longest then longest = window end
    local recent = redis.call('ZRANGEBYSCORE', KEYS[8], now - window, '+inf', 'WITHSCORES')
    local times = {}
    for i = 1, #recent, 2 do
      if recent[i] ~= member then table.insert(times, tonumber(recent[i + 1])) end  -- never itself
    end
    if #times >= count then
      local when = times[#times - count + 1] + window
      if allowed_at == nil or when > allowed_at then allowed_at = when end
    end
  end
  if allowed_at ~= nil then
    if ARGV[8] == 'drop' then
      finish(dkey, member, events, deadlines, maxlen, 'capped', 'over the frequency cap for this account', now)
      return {'over_cap', tostring(allowed_at), tostring(now)}
    end
    return {'capped', tostring(allowed_at), tostring(now)}
  end
  redis.call('ZADD', KEYS[8], now, member)
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - longest)
  redis.call('EXPIRE', KEYS[8], longest + 60)
  redis.call('HSET', dkey, 'cap_key', KEYS[8])
end
local lease = now + tonumber(ARGV[5])
redis.call('HSET', dkey, 'state', 'sending', 'token', ARGV[4], 'lease_until', lease, 'updated_at', now)
redis.call('HINCRBY', dkey, 'attempts', 1)
if dup_window > 0 then
  redis.call('SET', KEYS[9], string.format('%.6f', now) .. ' ' .. member, 'EX', math.ceil(dup_window) + 86400)
  redis.call('HSET', dkey, 'recent_key', KEYS[9])
end
redis.call('ZADD', deadlines, lease, member)
redis.call('ZADD', ARGV[1] .. 'leases', lease, member)
local out = {'claimed', '', tostring(now)}
for _, address in ipairs(reachable) do table.insert(out, address) end
return out
