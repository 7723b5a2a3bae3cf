-- Opt addresses out of a channel, or back in, remembering who may undo each opt-out.
-- KEYS: [1] the channel's opt-out set, [2] its hash of opt-outs a keyword may undo,
--       [3] the opt-out audit stream
-- ARGV: [1] prefix, [2] add | remove, [3] source, [4] by, [5] channel, [6] when (ISO-8601),
--       [7] the audit stream's maxlen, [8..] addresses (normalised)
-- An opt-out from an inbound keyword (`sms-keyword`) or from the provider (`provider`: the
-- recipient replied STOP to the carrier, or the token is gone) is one a keyword may undo; one
-- from any other source (an operator, an unsubscribe link) needs an operator, and so does an
-- address opted out both ways, or opted out before sources were kept.
-- A keyword's `remove` of an opt-out it may not undo is refused and not audited. Each `add`
-- entry of the audit stream says who may lift the opt-out then in force (`undo`: keyword or
-- operator), so a rebuild from the ledger restores that too.
-- Returns, per address: 1 changed, 0 already so, -1 refused.
local KEYWORD = {['sms-keyword'] = true, provider = true}
local adding, source = ARGV[2] == 'add', ARGV[3]
local out = {}
for i = 8, #ARGV do
  local address = ARGV[i]
  local answer
  if adding then
    answer = redis.call('SADD', KEYS[1], address)
    if not KEYWORD[source] then
      redis.call('HDEL', KEYS[2], address)
    elseif answer == 1 then
      redis.call('HSET', KEYS[2], address, source)
    end
  elseif KEYWORD[source] and redis.call('SISMEMBER', KEYS[1], address) == 1
      and not redis.call('HGET', KEYS[2], address) then
    answer = -1
  else
    answer = redis.call('SREM', KEYS[1], address)
    redis.call('HDEL', KEYS[2], address)
  end
  if answer >= 0 then
    local entry = {'channel', ARGV[5], 'address', address, 'action', ARGV[2], 'source', source,
                   'by', ARGV[4], 'at', ARGV[6]}
    if adding then  -- who may lift the opt-out now in force (what a rebuild restores)
      table.insert(entry, 'undo')
      table.insert(entry, redis.call('HEXISTS', KEYS[2], address) == 1 and 'keyword' or 'operator')
    end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(entry))
  end
  out[#out + 1] = answer
end
return out
