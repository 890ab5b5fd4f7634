-- ARGV: iid, body, idem, author
-- idem: idempotency key ('' = none); author: 'customer' | 'system'.
-- A customer message (or a note from the channel about the conversation, e.g. a bounce) joins the
-- thread and reaches the assigned agent. A retried message (same key) returns the first one's seq.
if author ~= 'customer' and author ~= 'system' then
  return err('INVALID', 'author: must be customer or system')
end
if idem ~= '' then
  local seen = redis.call('GET', K.idem(idem))
  if seen then return ok(seen, NOWS, '0') end
end
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'interaction_id: no interaction "' .. iid .. '"') end
if ix.ch == 'voice' then return err('INVALID', 'interaction_id: voice interactions carry no messages') end
if ix.state == 'completed' or ix.state == 'abandoned' then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" has ended (' .. ix.state .. '); start a new interaction')
end
if num(ix.nmsg) >= MAX_MSGS then
  return err('PRECONDITION', 'interaction_id: thread is full (' .. MAX_MSGS .. ' messages)')
end
local seq = append_msg(iid, author, '', body)
if idem ~= '' then redis.call('SET', K.idem(idem), tostring(seq), 'EX', IDEM_TTL) end
local typ = EV.message_in
if author == 'system' then typ = EV.message_system end
emit(typ, iid, ix.agent or '', ix.queue, { seq = seq, body = body })
if (ix.state == 'active' or ix.state == 'wrap_up') and ix.agent ~= '' then
  notify(ix.agent, PUSH.message, { ix = iid, seq = seq })
end
return ok(tostring(seq), NOWS, '1')
