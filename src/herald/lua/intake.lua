-- Store a batch of reminders once each, with their deliveries' states.
-- KEYS: for each reminder, its record key then its delivery keys; then the deadlines zset.
-- ARGV[1]: prefix; ARGV[2]: JSON array, one object per reminder:
--   {fields = [...], ttl = seconds, digest = hex, deliveries = [{member, deadline, fields}]}
-- Returns, per reminder: {status, accepted_at} with status accepted | duplicate | conflict.
local specs = cjson.decode(ARGV[2])
local deadlines = KEYS[#KEYS]
local out = {}
local k = 1
for i, s in ipairs(specs) do
  local rkey = KEYS[k]
  k = k + 1
  local existing = redis.call('HMGET', rkey, 'digest', 'accepted_at')
  if existing[1] then
    local status = 'conflict'
    if existing[1] == s.digest then status = 'duplicate' end
    out[i] = {status, existing[2] or ''}
    k = k + #s.deliveries
  else
    redis.call('HSET', rkey, unpack(s.fields))
    redis.call('EXPIRE', rkey, s.ttl)
    for _, d in ipairs(s.deliveries) do
      local dkey = KEYS[k]
      k = k + 1
      redis.call('HSET', dkey, unpack(d.fields))
      redis.call('EXPIRE', dkey, s.ttl)
      redis.call('ZADD', deadlines, d.deadline, d.member)
    end
    out[i] = {'accepted', s.accepted_at}
  end
end
return out
