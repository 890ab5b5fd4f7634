-- ARGV: agent, state, reason, cause, '1' to also close the desktop session (supervisor logout)
local aid, state = ARGV[1], ARGV[2]
if redis.call('EXISTS', K.agent(aid)) == 0 then return err('NOT_FOUND', 'agent_id: no agent "' .. aid .. '"') end
if state == 'offline' then
  go_offline(aid, ARGV[4])
else
  set_presence(aid, state, ARGV[3], ARGV[4])
  if state == 'ready' then pull_for_agent(aid) end
end
if ARGV[5] == '1' then notify(aid, 'closed', { reason = 'logged_out' }) end
return ok()
