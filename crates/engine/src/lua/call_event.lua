-- ARGV: iid, call, event_id, seq, oseq, kind, aid, cause, by, details, sticky_secs
-- A telephony system's report about a call, applied once and in the call's order: a repeated
-- event_id, or a sequence number not above the last one applied, changes nothing. seq '0': not
-- ordered (a report about one ring, which oseq names: it applies only while that offer stands).
-- kind: ringing | answered | held | retrieved | ring_failed | released | abandoned | transferred |
-- conferenced. aid: the agent it is about ('' if none). cause: ring_failed: no_answer | busy |
-- unreachable | ...; released, abandoned: the platform's cause. by: who hung up (caller | agent |
-- ''). details: a JSON object logged with the event. sticky_secs: how long the agent who talked
-- to the caller is remembered (the interaction's `cti.sticky` attribute names the caller; 0: not).
-- call: the platform's call id the event is about: for a callback only the attempt being dialled
-- (cb_call) moves the interaction; the call it was converted from, hung up since, does not.
-- While a callback is being dialled (accepted, the customer not yet on the line) ringing is the
-- customer's phone, answered connects them, and a failed ring or a hang-up fails the attempt.
-- Returns ok(outcome, state): outcome applied | duplicate | stale | ignored (nothing to change in
-- this state), and the interaction's state after.
local KINDS = { ringing = 1, answered = 1, held = 1, retrieved = 1, ring_failed = 1, released = 1,
  abandoned = 1, transferred = 1, conferenced = 1 }
if not KINDS[kind] then return err('INVALID', 'kind: no call event "' .. kind .. '"') end
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'call: no interaction "' .. iid .. '"') end
if ix.ch ~= 'voice' then return err('INVALID', 'call: interaction "' .. iid .. '" is not a call') end
local cb = (ix.cb or '') ~= ''
if cb and call ~= (ix.cb_call or '') then return ok('ignored', ix.state) end
local dialling = cb and ix.state == 'active' and num(ix.cb_conn) == 0
-- A platform that does not say whose phone it was means the one the call was offered to.
if aid == '' then aid = ix.agent or '' end
local info = cjson.decode(details)
-- What refuses an event is checked before the event counts as seen: a refused event can be sent
-- again once corrected.
local ordered = tonumber(seq) > 0
local fresh = not ordered or tonumber(seq) > num(ix.cseq)
if fresh and kind == 'answered' and ix.state ~= 'active' and not (ix.state == 'offered' and ix.agent == aid) then
  local at = ix.agent ~= '' and (' at agent "' .. ix.agent .. '"') or ''
  return err('PRECONDITION', 'agent: the call is not ringing at agent "' .. aid .. '" (it is ' .. ix.state .. at .. ')')
end
if event_id ~= '' and not redis.call('SET', K.cti_event(event_id), '1', 'NX', 'EX', IDEM_TTL) then
  return ok('duplicate', ix.state)
end
if not fresh then return ok('stale', ix.state) end
if ordered then ix_set(iid, 'cseq', seq) end
if oseq ~= '' and (ix.oseq ~= oseq or (ix.state ~= 'offered' and not dialling)) then return ok('ignored', ix.state) end

if dialling then
  if kind == 'ringing' then
    emit(EV.ringing, iid, ix.agent, ix.queue, info)
  elseif kind == 'answered' then
    ix_set(iid, 'cb_conn', NOWS)
    fig_incr(ix.queue, 'cb_connected', 1)
    local waited = NOW - num(ix.enq)
    if ix.cb_sl == 'connected' then count_sl(ix, queue_cfg(ix.queue), waited) end
    info.attempt, info.waited_ms = num(ix.cb_try), waited
    emit(EV.callback_connected, iid, ix.agent, ix.queue, info)
    notify(ix.agent, PUSH.call, { ix = iid, state = 'talking', since = NOW, hold_ms = 0 })
  elseif kind == 'ring_failed' or kind == 'released' or kind == 'abandoned' then
    callback_failed(iid, ix, cause ~= '' and cause or 'no_answer')
  else
    return ok('ignored', ix.state)
  end
  return ok('applied', redis.call('HGET', K.ix(iid), 'state'))
end

local function held_so_far()
  local h = num(ix.hold_ms)
  if (ix.held or '') ~= '' then h = h + NOW - num(ix.held) end
  return h
end

if kind == 'ringing' then
  if ix.state ~= 'offered' or ix.agent ~= aid then return ok('ignored', ix.state) end
  ix_set(iid, 't_ringing', NOWS)
  emit(EV.ringing, iid, aid, ix.queue, info)
  notify(aid, PUSH.call, { ix = iid, state = 'ringing', since = NOW, hold_ms = 0 })
elseif kind == 'answered' then
  if ix.state == 'active' then return ok('ignored', ix.state) end
  accept_offer(iid, ix, aid)
  notify(aid, PUSH.call, { ix = iid, state = 'talking', since = NOW, hold_ms = 0 })
elseif kind == 'held' then
  if ix.state ~= 'active' or (ix.held or '') ~= '' then return ok('ignored', ix.state) end
  ix_set(iid, 'held', NOWS)
  emit(EV.held, iid, ix.agent, ix.queue, info)
  notify(ix.agent, PUSH.call, { ix = iid, state = 'held', since = NOW, hold_ms = num(ix.hold_ms) })
elseif kind == 'retrieved' then
  if ix.state ~= 'active' or (ix.held or '') == '' then return ok('ignored', ix.state) end
  local h = held_so_far()
  ix_set(iid, 'held', '', 'hold_ms', h)
  info.hold_ms = h
  emit(EV.retrieved, iid, ix.agent, ix.queue, info)
  notify(ix.agent, PUSH.call, { ix = iid, state = 'talking', since = NOW, hold_ms = h })
elseif kind == 'ring_failed' then
  if ix.state ~= 'offered' or ix.agent ~= aid then return ok('ignored', ix.state) end
  if cause == 'no_answer' then
    miss_offer(iid, ix, 'no_answer')
  else
    reject_offer(iid, ix, aid, 'phone_' .. cause)
  end
elseif kind == 'released' then
  if ix.state == 'queued' or ix.state == 'offered' then
    abandon(iid, ix, 'caller_hung_up')
  elseif ix.state == 'active' then
    local hold = held_so_far()
    local talk = math.max(0, NOW - num(ix.t_active) - hold)
    ix_set(iid, 'end_reason', cause, 'held', '', 'hold_ms', hold, 'talk_ms', talk)
    emit(EV.released, iid, ix.agent, ix.queue, { cause = cause, by = by, talk_ms = talk, hold_ms = hold })
    local caller = tonumber(sticky_secs) > 0 and cjson.decode(ix.attrs or '{}')['cti.sticky']
    if caller and caller ~= '' then
      redis.call('SET', K.last_agent(caller), ix.agent, 'EX', tonumber(sticky_secs))
    end
    end_active(iid, ix, 'released')
    local state = redis.call('HGET', K.ix(iid), 'state')
    notify(ix.agent, PUSH.ended, { ix = iid, reason = 'released', state = state })
  else
    return ok('ignored', ix.state)
  end
elseif kind == 'abandoned' then
  if ix.state ~= 'queued' and ix.state ~= 'offered' then return ok('ignored', ix.state) end
  abandon(iid, ix, cause ~= '' and cause or 'caller_hung_up')
elseif kind == 'conferenced' then
  if ix.state ~= 'active' then return ok('ignored', ix.state) end
  emit(EV.conferenced, iid, ix.agent, ix.queue, info)
end
-- 'transferred' is only counted here; the caller moves the call (the engine's transfer) next.
return ok('applied', redis.call('HGET', K.ix(iid), 'state'))
