-- ARGV: iid, idem, ch, customer, subject, attrs, queue, priority, body, preferred_agent,
--       preferred_wait_ms, if_refused, callback
-- idem: idempotency key ('' = none); attrs: JSON object; priority: '' = the queue's; body: the
-- first message ('' = none); preferred_wait_ms: how long the preferred agent is waited for;
-- if_refused: what a closed queue whose rule refuses the channel does — 'hold' (created, it
-- waits), 'fail' (nothing created: err CLOSED), 'end' (created and ended at once, 'closed').
-- callback: '' or a JSON object: a callback from the start (an IVR's), its fields as the
-- interaction keeps them (cb number, cb_nb not before, cb_max attempts, cb_retry ms, cb_dto dial
-- timeout ms, cb_sl where its service level is measured) and enq, when its caller started
-- waiting (0: now; never later than now), the place in line it keeps.
if idem ~= '' then
  local existing = redis.call('GET', K.idem(idem))
  if existing then return ok_ix(existing, false, existing, '0') end
end
local q = queue_cfg(queue)
if not q then return err('NOT_FOUND', 'queue: no queue named "' .. queue .. '"') end
if not takes(q, ch) then
  return err('INVALID', 'channel: queue "' .. queue .. '" does not take ' .. ch .. ' interactions')
end
-- A closed queue's rule for the channel: overflow to an open queue, or to a closed one whose own
-- rule then decides (a chain that comes back, or a target that is gone or does not take the
-- channel, holds it where it got to); hold; or refuse.
local closed_from, refused = '', false
local seen = {}
while q.closed and not seen[queue] do
  seen[queue] = true
  local r = closed_rule_of(q, ch)
  if r.a == 'refuse' then
    refused = true
  elseif r.a == 'overflow' then
    local t = queue_cfg(r.q)
    if takes(t, ch) and not seen[r.q] then
      if closed_from == '' then closed_from = queue end
      queue, q = r.q, t
    end
  end
  if r.a ~= 'overflow' then break end
end
if refused and if_refused == 'fail' then
  return err('CLOSED', cjson.encode({ queue = queue, opens = tonumber(q.opens) }))
end
if closed_from ~= '' then
  local a = cjson.decode(attrs)
  a['closed.from'] = closed_from
  attrs = cjson.encode(a)
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
local now = NOWS
-- Held as it is written (strings, as a read would give), so routing need not read it back.
-- The id is the key's, not a field: every byte here is paid per waiting interaction.
local ix = { ch = ch, cust = customer, subj = subject, attrs = attrs, queue = queue, pri = tostring(pri),
  enq = now, qenter = now, qseq = '1', stage = '0', target = target, oseq = '0', tseq = '0',
  nmsg = '0', xn = '0', state = 'queued', agent = '', pool = '', esc = '', xfer = '' }
-- Entering the queue's closed time, written now rather than by enwait's own HSET (see enwait).
ix.czq, ix.cz = queue, tostring(closed_total(q))
local cbk = nil
if callback ~= '' then
  cbk = cjson.decode(callback)
  local enq = tonumber(cbk.enq) or 0
  if enq > 0 and enq < NOW then ix.enq = tostring(enq) end
  ix.cb, ix.cb_try = cbk.cb, '0'
  ix.cb_max, ix.cb_retry, ix.cb_dto, ix.cb_sl = tostring(cbk.cb_max), tostring(cbk.cb_retry), tostring(cbk.cb_dto), cbk.cb_sl
  if (tonumber(cbk.cb_nb) or 0) > NOW then ix.cb_nb = tostring(cbk.cb_nb) end
end
-- Nobody named and nothing to wait for: routed before it enters the waiting sets, which it enters
-- only if no agent takes it (an offer would take it out again in the same call). Its hash says
-- `queued` from the start, as enwait would write it. (A closed queue's refusal is never direct.)
local direct = target == '' and not ix.cb_nb and not q.closed
-- Its hash says where it waits from the start too: if no agent takes it, enwait need not write it.
if direct then ix.t_queued, ix.pool, ix.oexp = now, queue .. '#0', '' end
local fields = {}
for k, v in pairs(ix) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
ix_set(iid, unpack(fields))
if idem ~= '' then redis.call('SET', K.idem(idem), iid, 'EX', IDEM_TTL) end
local created = { channel = ch, customer = customer, subject = subject, priority = pri }
if closed_from ~= '' then created.closed_from = closed_from end
emit(EV.created, iid, '', queue, created)
if cbk then
  fig_incr(queue, 'cb_requested', 1)
  emit(EV.callback_requested, iid, '', queue,
    { number = ix.cb, not_before = tonumber(ix.cb_nb), waited_ms = NOW - tonumber(ix.enq), from = 'ivr' })
end
if body ~= '' then
  local seq = append_msg(iid, 'customer', '', body)
  emit(EV.message_in, iid, '', queue, { seq = seq, body = body })
end
-- Refused by a closed queue, and recorded: it ends at once (counted apart from abandonment).
if refused and if_refused == 'end' then
  ix_set(iid, 'state', 'abandoned', 't_abandoned', NOWS, 'end_reason', 'closed')
  fig_incr(queue, 'closed', 1)
  emit(EV.abandoned, iid, '', queue,
    { reason = 'closed', waited_ms = 0, channel = ch, customer = customer, opens_at = tonumber(q.opens) })
  expire_keys(iid, ix)
  return ok_ix(iid, false, iid, '1')
end
if target ~= '' then
  local member = 'xfer|' .. iid .. '|1'
  ix_set(iid, 'xfer', member, 'tseq', 1)
  redis.call('ZADD', K.timers(), NOW + tonumber(preferred_wait_ms), member)
  ix.xfer, ix.tseq = member, '1'
end
if direct then
  ix.unlisted = true
else
  enwait(iid, ix)
end
emit(EV.queued, iid, '', queue, { stage = 0, preferred_agent = target })
-- Without steps there is nothing to schedule, and `esc` is '' already.
if q.steps[1] then schedule_escalation(iid, ix, 0) end
if not try_route(iid, ix) and direct then
  ix.unlisted = nil
  enwait(iid, ix, true)
end
return ok_ix(iid, false, iid, '1')
