-- ARGV: aid, iid, disposition, notes
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.agent ~= aid or (ix.state ~= 'active' and ix.state ~= 'wrap_up') then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not assigned to you (it is ' .. ix.state .. ')')
end
ix_set(iid, 'disp', disposition, 'notes', notes)
ix.disp, ix.notes = disposition, notes
if ix.state == 'active' then
  end_active(iid, ix, 'agent')
else
  emit(EV.disposition, iid, aid, ix.queue, { disposition = disposition, notes = notes })
end
return ok_ix(iid, false)
