-- The decision to send, immediately before the provider call.
-- KEYS: [1] delivery hash, [2] reminder record, [3] events stream, [4] deadlines zset,
--       [5] the channel's opt-out set, [6] the account's holds (hold id -> compact JSON, and
--       '^<category>' -> '<began> <hold id>', the marks), [7] the suppression store's marker,
--       [8] the account's contact count for this channel and category (frequency caps),
--       [9] the last delivery of this kind to the account on this channel (duplicate window)
-- ARGV: [1] prefix, [2] delivery key, [3] now (epoch s), [4] now ISO, [5] token,
--       [6] lease until (epoch s), [7] events maxlen, [8] cap rules ("count,seconds;..." or
--       ""), [9] cap action (defer | drop), [10] duplicate window in seconds (0: off),
--       [11..] the addresses to be used
-- Returns {verdict, detail}: claimed | missing | not_pending(state) | cancelled | expired |
-- suppressed | opted_out | unknown_suppression | early(not_before) | capped(when allowed) |
-- over_cap(when allowed, finished as capped) | duplicate(the earlier delivery). A cancelled, expired,
-- suppressed or opted-out delivery is finished here, atomically. Without the marker nothing
-- is claimed (fail closed).
local dkey, rkey, events, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, now, now_iso = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local d = redis.call('HMGET', dkey, 'state', 'expires_at', 'not_before', 'category', 'accepted_at')
if not d[1] then return {'missing', ''} end
if not PENDING[d[1]] then return {'not_pending', d[1]} end
if redis.call('HEXISTS', rkey, 'cancelled_at') == 1 then
  finish(dkey, member, events, deadlines, ARGV[7], 'cancelled', 'withdrawn upstream', now, now_iso)
  return {'cancelled', ''}
end
if d[2] and d[2] ~= '' and now >= tonumber(d[2]) then
  finish(dkey, member, events, deadlines, ARGV[7], 'expired', 'expired before it could be sent',
         now, now_iso)
  return {'expired', ''}
end
if redis.call('EXISTS', KEYS[7]) == 0 then return {'unknown_suppression', ''} end
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
  finish(dkey, member, events, deadlines, ARGV[7], 'suppressed',
         'held: hold ' .. blocking_id .. ' (' .. source .. '): ' .. blocking['reason'], now, now_iso)
  return {'suppressed', blocking_id}
end
if category == 'collection' and mark then
  local began, hold = string.match(mark, '^(%S+) (.+)$')
  if began and tonumber(began) > tonumber(d[5] or '0') then
    finish(dkey, member, events, deadlines, ARGV[7], 'suppressed',
           'superseded: decided before hold ' .. hold .. ' began', now, now_iso)
    return {'suppressed', hold}
  end
end
if #ARGV >= 11 then
  local reachable = false
  for i = 11, #ARGV do
    if redis.call('SISMEMBER', KEYS[5], ARGV[i]) == 0 then reachable = true end
  end
  if not reachable then
    finish(dkey, member, events, deadlines, ARGV[7], 'opted_out',
           'the recipient opted out of this channel', now, now_iso)
    return {'opted_out', ''}
  end
end
if d[3] and d[3] ~= '' and now < tonumber(d[3]) then return {'early', d[3]} end
local dup_window = tonumber(ARGV[10])
if dup_window > 0 then
  local mark = redis.call('GET', KEYS[9])
  local at, earlier = nil, nil
  if mark then at, earlier = string.match(mark, '^(%S+) (.+)$') end
  if earlier and earlier ~= member and now - tonumber(at) < dup_window then
    finish(dkey, member, events, deadlines, ARGV[7], 'duplicate',
           'the same kind went to this account on this channel recently (' .. earlier .. ')',
           now, now_iso)
    return {'duplicate', earlier}
  end
end
local longest = 0
if ARGV[8] ~= '' then
  local allowed_at = nil
  for rule in string.gmatch(ARGV[8], '[^;]+') do
    local count, window = string.match(rule, '(%d+),(%d+)')
    count, window = tonumber(count), tonumber(window)
    if window > longest then longest = window end
    local recent = redis.call('ZRANGEBYSCORE', KEYS[8], now - window, '+inf', 'WITHSCORES')
    local n = #recent / 2
    if n >= count then
      local when = tonumber(recent[(n - count) * 2 + 2]) + window
      if allowed_at == nil or when > allowed_at then allowed_at = when end
    end
  end
  if allowed_at ~= nil then
    if ARGV[9] == 'drop' then
      finish(dkey, member, events, deadlines, ARGV[7], 'capped',
             'over the frequency cap for this account', now, now_iso)
      return {'over_cap', tostring(allowed_at)}
    end
    return {'capped', tostring(allowed_at)}
  end
  redis.call('ZADD', KEYS[8], now, member)
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - longest)
  redis.call('EXPIRE', KEYS[8], longest + 60)
end
redis.call('HSET', dkey, 'state', 'sending', 'token', ARGV[5], 'lease_until', ARGV[6],
           'updated_at', now)
redis.call('HINCRBY', dkey, 'attempts', 1)
if dup_window > 0 then
  redis.call('SET', KEYS[9], ARGV[3] .. ' ' .. member, 'EX', math.ceil(dup_window) + 86400)
end
redis.call('ZADD', deadlines, ARGV[6], member)
redis.call('ZADD', ARGV[1] .. 'leases', ARGV[6], member)
return {'claimed', ''}
