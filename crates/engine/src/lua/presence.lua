-- ARGV: aid, state, reason, cause, close
-- close: '1' to also close the desktop session (supervisor logout).
local a = redis.call('HMGET', K.agent(aid), 'presence', 'connected')
if not a[1] then return err('NOT_FOUND', 'agent_id: no agent "' .. aid .. '"') end
-- A supervisor cannot make an agent without a desktop look available: nothing can reach it.
if cause == 'supervisor' then
  if state == 'ready' and a[2] ~= '1' then
    return err('PRECONDITION', 'presence.state: agent "' .. aid .. '" has no desktop connected; it cannot be made ready')
  end
  if state == 'not_ready' and a[1] == 'offline' and a[2] ~= '1' then
    return err('PRECONDITION', 'presence.state: agent "' .. aid .. '" is logged out; only OFFLINE applies')
  end
end
if state == 'offline' then
  go_offline(aid, cause)
else
  set_presence(aid, state, reason, cause)
  if state == 'ready' then pull_for_agent(aid) end
end
if close == '1' then
  notify(aid, PUSH.closed, { reason = 'logged_out' })
  emit(EV.logout, '', aid, '', { cause = cause })
end
return ok()
