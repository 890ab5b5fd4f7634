-- ARGV: agent, state, reason, cause
local aid, state = ARGV[1], ARGV[2]
if redis.call('EXISTS', K.agent(aid)) == 0 then return err('NOT_FOUND', 'agent_id: no agent "' .. aid .. '"') end
if state == 'offline' then
  go_offline(aid, ARGV[4])
else
  set_presence(aid, state, ARGV[3], ARGV[4])
  if state == 'ready' then pull_for_agent(aid) end
end
return ok()
