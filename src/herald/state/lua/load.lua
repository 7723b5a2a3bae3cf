-- A worker process takes a batch of deliveries: it reads them and becomes responsible for them.
-- KEYS: [1] deadlines zset, [2] scheduled zset
-- ARGV: [1] prefix, [2] clock offset (s), [3] hold (s): how long the take lasts unless renewed,
--       [4] the taking process's holder id, [5..] delivery keys
-- Per key: {verdict, detail, the delivery hash (flat), reminder body, reminder cancelled_at}:
--   ok           -> taken: `holder` set, deadline now + hold (the process renews it while it
--                   works; if it dies, the reconciler re-publishes the delivery)
--   gone         -> no such delivery, or its reminder expired from Redis
--   not_pending  -> claimed or finished already (a message delivered again)
--   waiting      -> waits in the scheduler until detail (a stale message): left to it
--   held         -> another live process holds it (detail: its holder id)
-- Returns {now, per-key answers...}.
local now = clock(ARGV[2])
local hold, me = tonumber(ARGV[3]), ARGV[4]
local out = {tostring(now)}
local taken = {}
for i = 5, #ARGV do
  local member = ARGV[i]
  local dkey = ARGV[1] .. 'd:' .. member
  local h = redis.call('HGETALL', dkey)
  local f = {}
  for j = 1, #h, 2 do f[h[j]] = h[j + 1] end
  local r = {false, false}
  if f.reminder_id then r = redis.call('HMGET', ARGV[1] .. 'r:' .. f.reminder_id, 'body', 'cancelled_at') end
  local answer
  if not f.state or not r[1] then
    answer = {'gone', ''}
  elseif not PENDING[f.state] then
    answer = {'not_pending', f.state}
  else
    local due = nil
    if f.state ~= 'accepted' then due = redis.call('ZSCORE', KEYS[2], member) end
    if due and tonumber(due) > now then
      answer = {'waiting', due}
    elseif f.holder and f.holder ~= me and tonumber(redis.call('ZSCORE', KEYS[1], member) or '0') > now then
      answer = {'held', f.holder}
    else
      if f.holder ~= me then redis.call('HSET', dkey, 'holder', me) end
      table.insert(taken, now + hold)
      table.insert(taken, member)
      answer = {'ok', '', h, r[1], r[2] or ''}
    end
  end
  table.insert(out, answer)
end
if #taken > 0 then redis.call('ZADD', KEYS[1], unpack(taken)) end
return out
