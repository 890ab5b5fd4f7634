-- ARGV: iid, seq, state, rank, code, segs
-- A reply's delivery state (SMS), kept on the message in the thread. A report applies only when it
-- ranks higher than what is recorded, so a late "sent" never overwrites "failed" and a repeated
-- report changes nothing; one that applies is logged and shown to the agent holding the interaction.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
local n = tonumber(seq)
if not n or n < 1 or n > num(ix.nmsg) then
  return err('NOT_FOUND', 'seq: interaction "' .. iid .. '" has no message ' .. tostring(seq))
end
local raw = redis.call('LINDEX', K.ix_msgs(iid), n - 1)
if not raw then return err('NOT_FOUND', 'seq: message ' .. seq .. ' of "' .. iid .. '" is gone') end
local m = cjson.decode(raw)
if num(m.seq) ~= n then return err('CORRUPT', 'thread of "' .. iid .. '" out of order at ' .. seq) end
if m.author ~= 'agent' then return err('INVALID', 'seq: message ' .. seq .. ' is not a reply') end
if m.dlv and num(m.dlv.r) >= num(rank) then return ok('0', m.dlv.s) end
m.dlv = { s = state, r = num(rank), c = code, n = num(segs) }
ix_changed()
redis.call('LSET', K.ix_msgs(iid), n - 1, cjson.encode(m))
local d = { seq = n, state = state, code = code, segments = num(segs) }
emit(EV.delivery, iid, m.agent or '', ix.queue, d)
if (ix.state == 'active' or ix.state == 'wrap_up') and ix.agent ~= '' then
  d.ix = iid
  notify(ix.agent, PUSH.delivery, d)
end
return ok('1', state)
