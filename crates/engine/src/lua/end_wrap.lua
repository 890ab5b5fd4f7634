-- ARGV: agent, interaction, disposition ('' keeps), notes ('' keeps)
local aid, iid = ARGV[1], ARGV[2]
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.agent ~= aid or ix.state ~= 'wrap_up' then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not in wrap-up with you (it is ' .. ix.state .. ')')
end
if ARGV[3] ~= '' then
  redis.call('HSET', K.ix(iid), 'disp', ARGV[3])
  ix.disp = ARGV[3]
end
if ARGV[4] ~= '' then
  redis.call('HSET', K.ix(iid), 'notes', ARGV[4])
  ix.notes = ARGV[4]
end
end_wrap(iid, ix)
return ok()
