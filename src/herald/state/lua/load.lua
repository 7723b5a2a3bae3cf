-- A worker process takes a batch of deliveries: it reads them and becomes responsible for them.
-- KEYS: [1] deadlines zset, [2] scheduled zset, [3] the suppression store's marker
-- ARGV: [1] prefix, [2] clock offset (s), [3] hold (s): how long the take lasts unless renewed,
--       [4] the taking process's holder id, [5] the prefix of accounts' holds hashes,
--       [6] the prefix of duplicate marks ('' when the duplicate window is off), [7] the prefix
--       of cap sets, [8] the capped "<channel>.<category>=<longest window s>;..." ('' for none),
--       [9..] delivery keys
-- Also read for each delivery taken, so that the guards need no Redis call of their own: its
-- account's holds (flat), its duplicate mark (false when none or not asked) and its cap set's
-- recent entries (flat, member and score; false when no cap applies). The claim reads them again.
-- Per key: {verdict, detail, the delivery hash (flat), reminder body, reminder cancelled_at,
--           holds, duplicate mark, cap entries}:
--   ok           -> taken: `holder` set, deadline now + hold (the process renews it while it
--                   works; if it dies, the reconciler re-publishes the delivery)
--   gone         -> no such delivery, or its reminder expired from Redis
--   not_pending  -> claimed or finished already (a message delivered again)
--   waiting      -> waits in the scheduler until detail (a stale message): left to it
--   held         -> another live process holds it (detail: its holder id)
-- Returns {now, marker present (1 or 0), per-key answers...}.
local now = clock(ARGV[2])
local hold, me = tonumber(ARGV[3]), ARGV[4]
local longest = {}
for pair, seconds in string.gmatch(ARGV[8], '([^=;]+)=(%d+)') do longest[pair] = tonumber(seconds) end
local out = {tostring(now), redis.call('EXISTS', KEYS[3])}
local taken = {}
for i = 9, #ARGV do
  local member = ARGV[i]
  local dkey = ARGV[1] .. 'd:' .. member
  local h = redis.call('HGETALL', dkey)
  local f = {}
  for j = 1, #h, 2 do f[h[j]] = h[j + 1] end
  local r = {false, false}
  if f.reminder_id then
    r = redis.call('HMGET', ARGV[1] .. 'r:' .. f.reminder_id, 'body', 'cancelled_at')
    -- the body has its own key; a record stored before it had one holds it as a field
    r[1] = redis.call('GET', ARGV[1] .. 'b:' .. f.reminder_id) or r[1]
  end
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
      local holds = redis.call('HGETALL', ARGV[5] .. (f.account_id or ''))
      local mark = false
      if ARGV[6] ~= '' then
        mark = redis.call('GET', ARGV[6] .. (f.account_id or '') .. ':' .. (f.kind or '') .. ':' .. (f.channel or ''))
      end
      local capped = false
      local window = longest[(f.channel or '') .. '.' .. (f.category or '')]
      if window then
        local set = ARGV[7] .. (f.account_id or '') .. ':' .. (f.channel or '') .. ':' .. (f.category or '')
        capped = redis.call('ZRANGEBYSCORE', set, now - window, '+inf', 'WITHSCORES')
      end
      answer = {'ok', '', h, r[1], r[2] or '', holds, mark, capped}
    end
  end
  table.insert(out, answer)
end
if #taken > 0 then redis.call('ZADD', KEYS[1], unpack(taken)) end
return out
