-- ARGV: aid, state
-- An agent's phone as the telephony system reports it: registered | unregistered | dnd | busy.
-- Only a registered phone (or one never reported) takes calls; a phone becoming free pulls work.
if redis.call('EXISTS', K.agent(aid)) == 0 then return err('NOT_FOUND', 'agent: no agent "' .. aid .. '"') end
local before = redis.call('HGET', K.agent(aid), 'phone') or ''
if before == state then return ok('0') end
agent_set(aid, 'phone', state)
emit(EV.phone, '', aid, '', { state = state, before = before })
notify(aid, PUSH.call, { ix = '', state = 'phone_' .. state, since = NOW, hold_ms = 0 })
if state == 'registered' then
  pull_for_agent(aid)
else
  refresh_agent(aid)
end
return ok('1')
