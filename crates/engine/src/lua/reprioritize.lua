-- ARGV: iid, priority
local pri = tonumber(priority)
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.state ~= 'queued' and ix.state ~= 'offered' then
  return err('PRECONDITION', 'interaction_id: only waiting or offered interactions can be reprioritized (it is ' .. ix.state .. ')')
end
local waiting = ix.state == 'queued'
if waiting then unwait(iid, ix) end
ix_set(iid, 'pri', pri)
ix.pri = tostring(pri)
if waiting then enwait(iid, ix) end
emit(EV.reprioritized, iid, '', ix.queue, { priority = pri })
return ok()
