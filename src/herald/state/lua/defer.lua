-- Put a delivery aside until a time: the scheduler re-publishes it when due.
-- KEYS: [1] delivery hash, [2] scheduled zset, [3] deadlines zset
-- ARGV: [1] prefix, [2] delivery key, [3] due (epoch s), [4] reason, [5] clock offset (s),
--       [6] grace (s), [7] token ('' for a pending delivery; a claimed one must be `sending`
--       under it, or `in_doubt` from that very claim), [8] state to wait in: `scheduled` (a
--       time was asked for) or `retrying` (a failure), [9] 1 to give back what the claim took
-- Returns 1 when set aside, 0 when the delivery had moved on (nothing changed).
local d = redis.call('HMGET', KEYS[1], 'state', 'token', 'doubt_token')
if not d[1] then return 0 end
if ARGV[7] ~= '' then
  if d[1] == 'in_doubt' and d[3] == ARGV[7] then  -- the answer came after the lease: not sent
    redis.call('ZREM', ARGV[1] .. 'indoubt', ARGV[2])
    redis.call('HDEL', KEYS[1], 'outcome', 'finished_at')
  elseif d[1] ~= 'sending' or d[2] ~= ARGV[7] then
    return 0
  end
elseif not PENDING[d[1]] then
  return 0
end
redis.call('HDEL', KEYS[1], 'doubt_token')
if ARGV[9] == '1' then release_contact(KEYS[1], ARGV[2]) end
set_aside(KEYS[1], ARGV[2], KEYS[2], KEYS[3], ARGV[3], ARGV[4], clock(ARGV[5]), ARGV[6], ARGV[8])
return 1
