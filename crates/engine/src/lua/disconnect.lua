-- ARGV: aid, session, mode
-- The desktop stream ended (end_session in lib.lua). mode 'release': this instance is shutting
-- down, so the agent's offers go back to the queue now ('' otherwise).
local a = redis.call('HMGET', K.agent(aid), 'session', 'instance', 'connected')
if a[1] ~= session or a[3] ~= '1' then return ok('0') end
end_session(aid, session, a[2], mode == 'release')
return ok('1')
