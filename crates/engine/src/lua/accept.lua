-- ARGV: aid, iid
local ix, e = offered_to(iid, aid)
if not ix then return e end
redis.call('ZREM', K.timers(), 'offer|' .. iid .. '|' .. ix.oseq)
if ix.esc ~= '' then redis.call('ZREM', K.timers(), ix.esc) end
redis.call('HSET', K.ix(iid), 'state', 'active', 't_active', NOW, 'oexp', '', 'esc', '')
local q = queue_cfg(ix.queue)
local sl_ms = 20000
if q then sl_ms = q.sl_ms end
local waited = NOW - num(ix.enq)
fig_incr(ix.queue, 'accepted', 1)
fig_incr(ix.queue, 'asa_ms', waited)
if waited <= sl_ms then fig_incr(ix.queue, 'in_sl', 1) end
emit(EV.accepted, iid, aid, ix.queue, { waited_ms = waited })
-- The agent's session is told (the accepting session with the reply, like any push for it).
notify(aid, PUSH.assigned, { ix = iid }, iid)
return ok_ix(iid, true)
