-- ARGV: aid, token_hash, inst, session
-- token_hash: the salted hash of the token the desktop sent, or '' when the stream's own
-- credential (a key or JWT for this agent) was checked already.
local a = hmap(K.agent(aid))
if not a then return err('UNAUTH', 'unknown agent or wrong token') end
if token_hash ~= '' and not same_secret(a.token_hash, token_hash) then
  return err('UNAUTH', 'unknown agent or wrong token')
end
if a.session and a.session ~= '' then
  redis.call('ZREM', K.timers(), 'grace|' .. aid .. '|' .. a.session)
  if a.connected == '1' and a.instance ~= '' then
    inbox_push(a.instance, aid, a.session, PUSH.closed, cjson.encode({ reason = 'replaced' }))
    redis.call('SREM', K.inst_agents(a.instance), aid)
  end
end
agent_set(aid, 'instance', inst, 'session', session, 'connected', 1)
redis.call('SADD', K.inst_agents(inst), aid)
emit(EV.login, '', aid, '', { instance = inst })
if a.presence == 'offline' then set_presence(aid, 'not_ready', 'login', 'login') end
pull_for_agent(aid)
return ok()
