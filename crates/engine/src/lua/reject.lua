-- ARGV: aid, iid, reason
local ix, e = offered_to(iid, aid)
if not ix then return e end
redis.call('ZREM', K.timers(), 'offer|' .. iid .. '|' .. ix.oseq)
release(aid, ix.ch, iid)
fig_incr(ix.queue, 'rejected', 1)
emit(EV.rejected, iid, aid, ix.queue, { reason = reason })
requeue(iid, ix, aid)
try_route(iid)
pull_for_agent(aid)
return ok()
