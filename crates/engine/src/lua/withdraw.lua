-- ARGV: iid, reason
-- The customer left (or a supervisor withdrew it).
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.state == 'queued' or ix.state == 'offered' then
  abandon(iid, ix, reason)
-- A conversation taking a callback instead leaves only while it waits: one an agent took in
-- the meantime stays theirs.
elseif ix.state == 'active' and reason ~= 'callback' then
  ix_set(iid, 'end_reason', reason)
  emit(EV.ended_by_customer, iid, ix.agent, ix.queue, { reason = reason })
  end_active(iid, ix, 'customer')
  local state = redis.call('HGET', K.ix(iid), 'state')
  notify(ix.agent, PUSH.ended, { ix = iid, reason = reason, state = state })
end
return ok()
