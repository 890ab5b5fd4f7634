-- ARGV: iid, idem, ch, customer, subject, attrs, queue, priority, body, preferred_agent,
--       preferred_wait_ms
-- idem: idempotency key ('' = none); attrs: JSON object; priority: '' = the queue's; body: the
-- first message ('' = none); preferred_wait_ms: how long the preferred agent is waited for.
if idem ~= '' then
  local existing = redis.call('GET', K.idem(idem))
  if existing then return ok_ix(existing, false, existing, '0') end
end
local q = queue_cfg(queue)
if not q then return err('NOT_FOUND', 'queue: no queue named "' .. queue .. '"') end
if not takes(q, ch) then
  return err('INVALID', 'channel: queue "' .. queue .. '" does not take ' .. ch .. ' interactions')
end
local pri = q.pri
if priority ~= '' then pri = tonumber(priority) end
-- Sticky routing waits for the preferred agent whatever its presence: one who is offline, not
-- ready or busy may become free within the wait (the API promises "wait up to").
local target = ''
if preferred_agent ~= '' and tonumber(preferred_wait_ms) > 0
  and redis.call('EXISTS', K.agent(preferred_agent)) == 1 then
  target = preferred_agent
end
local now = tostring(NOW)
-- Held as it is written (strings, as a read would give), so routing need not read it back.
-- The id is the key's, not a field: every byte here is paid per waiting interaction.
local ix = { ch = ch, cust = customer, subj = subject, attrs = attrs, queue = queue, pri = tostring(pri),
  enq = now, qenter = now, qseq = '1', stage = '0', target = target, oseq = '0', tseq = '0',
  nmsg = '0', state = 'queued', agent = '', pool = '', esc = '', xfer = '' }
local fields = {}
for k, v in pairs(ix) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
redis.call('HSET', K.ix(iid), unpack(fields))
if idem ~= '' then redis.call('SET', K.idem(idem), iid, 'EX', IDEM_TTL) end
emit(EV.created, iid, '', queue, { channel = ch, customer = customer, subject = subject, priority = pri })
if body ~= '' then
  local seq = append_msg(iid, 'customer', '', body)
  emit(EV.message_in, iid, '', queue, { seq = seq, body = body })
end
if target ~= '' then
  local member = 'xfer|' .. iid .. '|1'
  redis.call('HSET', K.ix(iid), 'xfer', member, 'tseq', 1)
  redis.call('ZADD', K.timers(), NOW + tonumber(preferred_wait_ms), member)
  ix.xfer, ix.tseq = member, '1'
end
enwait(iid, ix)
emit(EV.queued, iid, '', queue, { stage = 0, preferred_agent = target })
schedule_escalation(iid, ix, 0)
try_route(iid, ix)
return ok_ix(iid, false, iid, '1')
