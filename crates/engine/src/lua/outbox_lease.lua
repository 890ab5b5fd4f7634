-- ARGV: instance, ttl ms. Takes or renews the lease of the event-log deliverer: one instance
-- delivers at a time, so the CRM sees each interaction's events in order.
local cur = redis.call('GET', K.outbox_lease())
if not cur or cur == ARGV[1] then
  redis.call('SET', K.outbox_lease(), ARGV[1], 'PX', tonumber(ARGV[2]))
  return ok('1')
end
return ok('0')
