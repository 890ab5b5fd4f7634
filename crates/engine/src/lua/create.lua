-- ARGV: id, idempotency key, channel, customer, subject, attributes json, queue, priority ('' = queue's),
--       first message body, preferred agent, preferred agent wait ms
local iid, idem, ch, queue = ARGV[1], ARGV[2], ARGV[3], ARGV[7]
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
if ARGV[8] ~= '' then pri = tonumber(ARGV[8]) end
-- Sticky routing waits for the preferred agent whatever its presence: one who is offline, not
-- ready or busy may become free within the wait (the API promises "wait up to").
local target = ''
if ARGV[10] ~= '' and tonumber(ARGV[11]) > 0 and redis.call('EXISTS', K.agent(ARGV[10])) == 1 then
  target = ARGV[10]
end
local now = tostring(NOW)
-- Held as it is written (strings, as a read would give), so routing need not read it back.
-- The id is the key's, not a field: every byte here is paid per waiting interaction.
local ix = { ch = ch, cust = ARGV[4], subj = ARGV[5], attrs = ARGV[6], queue = queue, pri = tostring(pri),
  enq = now, qenter = now, qseq = '1', stage = '0', target = target, oseq = '0', tseq = '0',
  nmsg = '0', state = 'queued', agent = '', pool = '', esc = '', xfer = '' }
local fields = {}
for k, v in pairs(ix) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
redis.call('HSET', K.ix(iid), unpack(fields))
if idem ~= '' then redis.call('SET', K.idem(idem), iid, 'EX', IDEM_TTL) end
emit(EV.created, iid, '', queue, { channel = ch, customer = ARGV[4], subject = ARGV[5], priority = pri })
if ARGV[9] ~= '' then
  local seq = append_msg(iid, 'customer', '', ARGV[9])
  emit(EV.message_in, iid, '', queue, { seq = seq, body = ARGV[9] })
end
if target ~= '' then
  local member = 'xfer|' .. iid .. '|1'
  redis.call('HSET', K.ix(iid), 'xfer', member, 'tseq', 1)
  redis.call('ZADD', K.timers(), NOW + tonumber(ARGV[11]), member)
  ix.xfer, ix.tseq = member, '1'
end
enwait(iid, ix)
emit(EV.queued, iid, '', queue, { stage = 0, preferred_agent = target })
schedule_escalation(iid, ix, 0)
try_route(iid, ix)
return ok_ix(iid, false, iid, '1')
