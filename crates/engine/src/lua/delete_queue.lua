-- ARGV: name
local q = queue_cfg(name)
if not q then return err('NOT_FOUND', 'name: no queue named "' .. name .. '"') end
local before = redis.call('HGET', K.queue(name), 'spec')
local n = redis.call('SCARD', K.qlive(name)) + redis.call('ZCARD', K.qwait(name))
if n > 0 then
  return err('PRECONDITION', 'name: ' .. n .. ' interaction(s) in "' .. name .. '" have not ended; move, withdraw or complete them first')
end
for _, other in ipairs(redis.call('SMEMBERS', K.queues())) do
  if other ~= name then
    local oq = queue_cfg(other)
    for _, step in ipairs(oq.steps) do
      if step.overflow == name then
        return err('PRECONDITION', 'name: queue "' .. other .. '" overflows to "' .. name .. '"')
      end
    end
    for ch, r in pairs(closed_rules(oq)) do
      if r.a == 'overflow' and r.q == name then
        return err('PRECONDITION', 'name: queue "' .. other .. '" overflows ' .. ch .. ' to "' .. name .. '" while closed')
      end
    end
  end
end
drop_pools(name, q.stages, {})
redis.call('DEL', K.queue(name), K.qwait(name), K.qlive(name))
redis.call('SREM', K.queues(), name)
redis.call('HDEL', K.qroute(), name)
RCACHE[name] = nil
redis.call('HINCRBY', K.meta(), 'queues_ver', 1)
emit(EV.queue_deleted, '', '', name, { before = before })
return ok()
