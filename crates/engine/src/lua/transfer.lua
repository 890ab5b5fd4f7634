-- ARGV: aid, iid, kind, target, boost, wait_ms
-- kind: 'queue' | 'agent'; target: its name or id; boost: added to the priority; wait_ms: how
-- long the named agent is waited for.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.agent ~= aid or ix.state ~= 'active' then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is not active with you (it is ' .. ix.state .. ')')
end
if kind == 'queue' then
  local q = queue_cfg(target)
  if not q then return err('NOT_FOUND', 'queue: no queue named "' .. target .. '"') end
  if not takes(q, ix.ch) then return err('INVALID', 'queue: "' .. target .. '" does not take ' .. ix.ch .. ' interactions') end
else
  if target == aid then return err('INVALID', 'agent_id: cannot transfer to yourself') end
  if redis.call('EXISTS', K.agent(target)) == 0 then
    return err('NOT_FOUND', 'agent_id: no agent "' .. target .. '"')
  end
end
release(aid, ix.ch, iid)
agent_set(aid, 'idle', NOWS)
-- The transferring agent is tried last, not never: it gets the interaction back only when no other
-- eligible agent is free (try_route), so it never waits while a qualified agent sits ready.
ix_set(iid, 'xfrom', aid)
ix.xfrom = aid
local pri = math.max(0, math.min(MAX_PRIORITY, num(ix.pri) + tonumber(boost)))
ix_set(iid, 'pri', pri, 'state', 'transferred', 't_transferred', NOWS)
ix.pri, ix.state = tostring(pri), 'transferred'
fig_incr(ix.queue, 'transferred', 1)
if kind == 'queue' then
  emit(EV.transferred, iid, aid, ix.queue, { to_queue = target, priority = pri })
  move_to_queue(iid, ix, target)
else
  emit(EV.transferred, iid, aid, ix.queue, { to_agent = target, priority = pri })
  local tseq = ix_incr(iid, 'tseq', 1)
  local member = 'xfer|' .. iid .. '|' .. tseq
  redis.call('ZADD', K.timers(), NOW + tonumber(wait_ms), member)
  ix_set(iid, 'target', target, 'xfer', member)
  ix.target, ix.xfer = target, member
end
enwait(iid, ix)
emit(EV.queued, iid, '', ix.queue, { stage = num(ix.stage), preferred_agent = ix.target or '' })
try_route(iid)
pull_for_agent(aid)
return ok()
