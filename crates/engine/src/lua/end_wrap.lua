-- ARGV: aid, iid, disposition, notes
-- disposition, notes: '' keeps what is there.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.agent ~= aid or ix.state ~= 'wrap_up' then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not in wrap-up with you (it is ' .. ix.state .. ')')
end
if disposition ~= '' then
  ix_set(iid, 'disp', disposition)
  ix.disp = disposition
end
if notes ~= '' then
  ix_set(iid, 'notes', notes)
  ix.notes = notes
end
end_wrap(iid, ix)
return ok()
