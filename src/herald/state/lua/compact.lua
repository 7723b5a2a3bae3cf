-- Fold finished deliveries that the ledger copied into one-line summaries on their reminders'
-- records, and delete their state hashes: Redis keeps live work, the ledger keeps history.
-- KEYS: [1] the copied zset (delivery keys, scored by when the ledger committed their outcome)
-- ARGV: [1] prefix, [2] clock offset (s), [3] seconds a copied delivery stays whole (receipts
--       and `herald status` read it meanwhile), [4] most deliveries this call looks at
-- Only a final outcome nobody acts on any more is folded: a delivery in doubt or dead (an
-- operator resolves or replays it), or back in work, stays whole; it is only taken off the set
-- (the ledger adds it again when it finishes anew). The summary, field `c:<channel>`:
--   <outcome>|<attempts>[@<provider>]|<finished_at>|<reason>   (the reason last: it may hold '|')
-- Once every delivery of a reminder is folded its body is deleted too (a record that still
-- holds the body as a field, from before bodies had their own key, is rewritten without it).
-- The record keeps its expiry: idempotency (the digest) lasts as long as before.
-- Returns {deliveries folded, deliveries looked at, 1 when more are due else 0}.
local FOLDED = {sent = true, suppressed = true, cancelled = true, duplicate = true,
                expired = true, opted_out = true, capped = true, failed = true, invalid = true}
local now = clock(ARGV[2])
local limit = tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, limit)
local folded = 0
for _, member in ipairs(due) do
  local dkey = ARGV[1] .. 'd:' .. member
  local d = redis.call('HMGET', dkey, 'state', 'attempts', 'finished_at', 'reason', 'reminder_id', 'channel',
                           'provider')
  if d[1] and FOLDED[d[1]] and d[5] and d[6] then
    local rid = d[5]
    local rkey = ARGV[1] .. 'r:' .. rid
    if redis.call('EXISTS', rkey) == 1 then
      local attempts = (d[2] or '0') .. (d[7] and ('@' .. d[7]) or '')
      local summary = table.concat({d[1], attempts, d[3] or '', d[4] or ''}, '|')
      redis.call('HSET', rkey, 'c:' .. d[6], summary)
      local whole = true
      for channel in string.gmatch(redis.call('HGET', rkey, 'channels') or '', '[^,]+') do
        if redis.call('HEXISTS', rkey, 'c:' .. channel) == 0 then whole = false end
      end
      if whole then
        redis.call('DEL', ARGV[1] .. 'b:' .. rid)
        if redis.call('HDEL', rkey, 'body') == 1 then
          -- a hash never shrinks back to its compact encoding: write it anew
          local ttl = redis.call('PTTL', rkey)
          local fields = redis.call('HGETALL', rkey)
          redis.call('DEL', rkey)
          redis.call('HSET', rkey, unpack(fields))
          if ttl > 0 then redis.call('PEXPIRE', rkey, ttl) end
        end
      end
    end
    redis.call('DEL', dkey)
    folded = folded + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
local more = 0
if #due == limit and redis.call('ZCOUNT', KEYS[1], '-inf', now - tonumber(ARGV[3])) > 0 then more = 1 end
return {folded, #due, more}
