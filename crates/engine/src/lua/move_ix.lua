-- ARGV: iid, queue, clear_exclusions
-- queue: '' = its own (with clear_exclusions); clear_exclusions: '1' to clear them. Supervisor move
-- of a waiting interaction; keeps its age. Clearing lets the agents who rejected or missed it (and
-- the one who transferred it, otherwise tried last) be offered it again like anyone else.
local clear = clear_exclusions == '1'
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.state ~= 'queued' then
  return err('PRECONDITION', 'interaction_id: only waiting interactions can be moved (it is ' .. ix.state .. ')')
end
local stay = clear and (queue == '' or queue == ix.queue)
if not stay then
  local q = queue_cfg(queue)
  if not q then return err('NOT_FOUND', 'queue: no queue named "' .. queue .. '"') end
  if not takes(q, ix.ch) then return err('INVALID', 'queue: "' .. queue .. '" does not take ' .. ix.ch .. ' interactions') end
end
-- Checked: from here on nothing fails.
if clear then
  local n = redis.call('SCARD', K.ix_excl(iid))
  redis.call('DEL', K.ix_excl(iid))
  ix_set(iid, 'xfrom', '', 'xn', '0')
  ix.xfrom, ix.xn = '', '0'
  emit(EV.exclusions_cleared, iid, '', ix.queue, { agents = n })
end
if stay then
  try_route(iid, ix)
  return ok()
end
unwait(iid, ix)
if ix.xfer and ix.xfer ~= '' then redis.call('ZREM', K.timers(), ix.xfer) end
ix_set(iid, 'target', '', 'xfer', '')
ix.target, ix.xfer = '', ''
local from = ix.queue
ix.state = 'moving'
move_to_queue(iid, ix, queue)
enwait(iid, ix)
emit(EV.moved, iid, '', queue, { from_queue = from })
try_route(iid)
return ok()
