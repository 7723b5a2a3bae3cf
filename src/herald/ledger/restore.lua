-- Put one account's holds and marks back, as the ledger's audit trail leaves them
-- (herald suppress rebuild). Never overwrites a hold already there, never moves a mark back
-- in time: running it twice, or on a Redis that kept its holds, changes nothing.
-- KEYS: [1] the account's holds hash, [2] the index of held accounts
-- ARGV: [1] account id, [2] n, the number of holds, then n pairs (hold id, stored JSON),
--       then triples (category, began as epoch seconds, hold id): the marks
-- Returns {holds restored, holds already there, marks restored, marks kept}
local n = tonumber(ARGV[2])
local restored, present = 0, 0
for i = 0, n - 1 do
  if redis.call('HSETNX', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i]) == 1 then
    restored = restored + 1
  else
    present = present + 1
  end
end
local marks, kept = 0, 0
local i = 3 + 2 * n
while i + 2 <= #ARGV do
  local field = '^' .. ARGV[i]
  local current = redis.call('HGET', KEYS[1], field)
  local began = nil
  if current then began = tonumber(string.match(current, '^(%S+)')) end
  if began == nil or began < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], field, ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    marks = marks + 1
  else
    kept = kept + 1
  end
  i = i + 3
end
if n > 0 then redis.call('ZADD', KEYS[2], 0, ARGV[1]) end
return {restored, present, marks, kept}
