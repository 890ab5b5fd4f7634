-- ARGV: who, iid, aid, on
-- who: 'customer' | 'agent'; aid: '' for the customer; on: '1' | '0'.
-- Typing is shown only while the interaction is active; it is not an event of the log.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if who == 'agent' then
  if ix.agent ~= aid or ix.state ~= 'active' then
    return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not active with you (it is ' .. ix.state .. ')')
  end
  redis.call('XADD', K.chat_signals(), 'MAXLEN', '~', 10000, '*', 'ix', iid, 'kind', 'typing', 'on', on)
elseif ix.state == 'active' and ix.agent ~= '' then
  notify(ix.agent, PUSH.typing, { ix = iid, on = on == '1' })
end
return ok()
