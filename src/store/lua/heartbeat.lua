-- ARGV: instance, 'stop' | ''. An instance that stops heartbeating is presumed dead after the grace period.
local member = 'inst|' .. ARGV[1]
if ARGV[2] == 'stop' then
  redis.call('ZREM', K.timers(), member)
  redis.call('DEL', K.inbox(ARGV[1]))
else
  redis.call('ZADD', K.timers(), NOW + GRACE_MS, member)
end
return ok(tostring(NOW))
