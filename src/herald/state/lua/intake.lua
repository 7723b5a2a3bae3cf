-- Store a batch of reminders once each, with their deliveries' states, on Redis's clock.
-- KEYS: for each reminder, its record key, its body key, then its delivery keys; then the
--       deadlines zset.
-- ARGV: [1] prefix, [2] JSON array, one object per reminder:
--   {fields = [...], body = canonical JSON, digest = hex, expires_at = epoch s or false,
--    expiry = seconds after
--    max(now, not_before) when expires_at is false, not_before = epoch s or false,
--    deliveries = [{member, fields}]},
--   [3] clock offset (s), [4] retention (s kept after expiry), [5] publish grace (s): until the
--   message is published, a delivery's deadline is this close (see queued.lua)
-- Each record gets accepted_at (now) and expires_at; each delivery also updated_at.
-- Returns, per reminder: {status, accepted_at} with status accepted | duplicate | conflict.
local specs = cjson.decode(ARGV[2])
local deadlines = KEYS[#KEYS]
local now = clock(ARGV[3])
local retention, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local now_text = string.format('%.3f', now)
local out = {}
local k = 1
for i, s in ipairs(specs) do
  local rkey, bkey = KEYS[k], KEYS[k + 1]
  k = k + 2
  local existing = redis.call('HMGET', rkey, 'digest', 'accepted_at')
  if existing[1] then
    local status = 'conflict'
    -- compared on the shorter one's length: records stored before digests were shortened
    -- hold all 64 characters
    local n = math.min(#existing[1], #s.digest)
    if n > 0 and string.sub(existing[1], 1, n) == string.sub(s.digest, 1, n) then status = 'duplicate' end
    out[i] = {status, existing[2] or ''}
    k = k + #s.deliveries
  else
    local expires = s.expires_at
    if not expires then
      local start = now
      if s.not_before and s.not_before > now then start = s.not_before end
      expires = start + s.expiry
    end
    local ttl = math.max(1, math.floor(expires - now + retention))
    local expires_text = string.format('%.3f', expires)
    local fields = s.fields
    table.insert(fields, 'accepted_at')
    table.insert(fields, now_text)
    table.insert(fields, 'expires_at')
    table.insert(fields, expires_text)
    redis.call('HSET', rkey, unpack(fields))
    redis.call('EXPIRE', rkey, ttl)
    redis.call('SET', bkey, s.body, 'EX', ttl)
    local due = {}
    for _, d in ipairs(s.deliveries) do
      local dkey = KEYS[k]
      k = k + 1
      fields = d.fields
      for _, v in ipairs({'accepted_at', now_text, 'expires_at', expires_text, 'updated_at', now_text}) do
        table.insert(fields, v)
      end
      redis.call('HSET', dkey, unpack(fields))
      redis.call('EXPIRE', dkey, ttl)
      table.insert(due, now + grace)
      table.insert(due, d.member)
    end
    redis.call('ZADD', deadlines, unpack(due))
    out[i] = {'accepted', now_text}
  end
end
return out
