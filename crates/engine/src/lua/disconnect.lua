-- ARGV: agent, session, 'release' | ''. The desktop stream ended (end_session in lib.lua);
-- 'release': this instance is shutting down.
local aid, session = ARGV[1], ARGV[2]
local a = redis.call('HMGET', K.agent(aid), 'session', 'instance', 'connected')
if a[1] ~= session or a[3] ~= '1' then return ok('0') end
end_session(aid, session, a[2], ARGV[3] == 'release')
return ok('1')
