-- ARGV: agent, session. The desktop stream ended: offline after the grace period unless it returns.
local aid, session = ARGV[1], ARGV[2]
local a = redis.call('HMGET', K.agent(aid), 'session', 'instance')
if a[1] ~= session then return ok('0') end
redis.call('HSET', K.agent(aid), 'connected', 0)
if a[2] then redis.call('SREM', K.inst_agents(a[2]), aid) end
redis.call('ZADD', K.timers(), NOW + GRACE_MS, 'grace|' .. aid .. '|' .. session)
emit('disconnected', '', aid, '', {})
refresh_agent(aid)
return ok('1')
