-- ARGV: aid, iid
local ix, e = offered_to(iid, aid)
if not ix then return e end
-- A call from a telephony system is taken by answering the phone (its `answered` event): accepting
-- on the desktop would leave the phone ringing and the call unanswered.
-- A callback not yet connected is accepted here, then dialled; a connected one transferred on is
-- a live call like any other.
local cb = (ix.cb or '') ~= '' and num(ix.cb_conn) == 0
if ix.ch == 'voice' and not cb and string.find(ix.attrs or '', '"cti.system"', 1, true) then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is a phone call: answer it on your phone')
end
accept_offer(iid, ix, aid)
-- A callback is accepted on the desktop, and then dialled: the telephony system (its WatchRoutes
-- stream) places a call from the agent's phone to the customer under a call id of ours, whose
-- events and reports move this interaction like any call's.
if cb then
  local n = ix_incr(iid, 'cb_try', 1)
  local call = iid .. '.cb' .. n
  local system = cjson.decode(ix.attrs or '{}')['cti.system'] or ''
  redis.call('SET', K.idem('cti|' .. system .. '|' .. call), iid, 'EX', IDEM_TTL)
  ix_set(iid, 'cb_call', call, 'cb_nb', '', 'cseq', 0)
  redis.call('ZADD', K.timers(), NOW + num(ix.cb_dto), 'cbd|' .. iid .. '|' .. n)
  emit(EV.dialing, iid, aid, ix.queue,
    { number = ix.cb, call_id = call, attempt = n, max_attempts = num(ix.cb_max), route = iid .. '#' .. ix.oseq })
  notify(aid, PUSH.call, { ix = iid, state = 'dialing', since = NOW, hold_ms = 0 })
end
return ok_ix(iid, true)
