-- ARGV: aid, iid, body
-- Stored before it is handed to the channel.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.ch == 'voice' then return err('INVALID', 'interaction_id: voice interactions carry no messages') end
if ix.agent ~= aid or ix.state ~= 'active' then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not active with you (it is ' .. ix.state .. ')')
end
if num(ix.nmsg) >= MAX_MSGS then
  return err('PRECONDITION', 'interaction_id: thread is full (' .. MAX_MSGS .. ' messages)')
end
local seq = append_msg(iid, 'agent', aid, body)
emit(EV.message_out, iid, aid, ix.queue, { seq = seq, body = body })
return ok(tostring(seq), NOWS)
