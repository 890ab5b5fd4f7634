-- ARGV: agent, interaction, disposition, notes
local aid, iid = ARGV[1], ARGV[2]
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.agent ~= aid or (ix.state ~= 'active' and ix.state ~= 'wrap_up') then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not assigned to you (it is ' .. ix.state .. ')')
end
redis.call('HSET', K.ix(iid), 'disp', ARGV[3], 'notes', ARGV[4])
ix.disp, ix.notes = ARGV[3], ARGV[4]
if ix.state == 'active' then
  end_active(iid, ix, 'agent')
else
  emit(EV.disposition, iid, aid, ix.queue, { disposition = ARGV[3], notes = ARGV[4] })
end
return ok_ix(iid, false)
