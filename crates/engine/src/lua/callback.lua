-- ARGV: iid, number, not_before, max_attempts, retry_ms, dial_timeout_ms, sl_at
-- A waiting call becomes a callback (the caller pressed "call me back"): it keeps its place (enq)
-- and priority, and the telephony system may hang the call up — its release no longer abandons
-- anything. Ringing at an agent, the ring is withdrawn (revoked: no exclusion). not_before: ms, or
-- '' (at once). Asked again for a callback already: nothing changes ('duplicate').
-- Returns ok_ix(outcome): applied | duplicate.
local ix = ix_get(iid)
if not ix then return err('NOT_FOUND', 'call: no interaction "' .. iid .. '"') end
if ix.ch ~= 'voice' then return err('INVALID', 'call: interaction "' .. iid .. '" is not a call') end
if (ix.cb or '') ~= '' then return ok_ix(iid, false, 'duplicate') end
if ix.state ~= 'queued' and ix.state ~= 'offered' then
  return err('PRECONDITION', 'call: only a waiting call becomes a callback (it is ' .. ix.state .. ')')
end
local rang = ''
if ix.state == 'offered' then
  rang = ix.agent
  revoke(iid, ix, 'callback')
else
  unwait(iid, ix)
end
local nb = ''
if (tonumber(not_before) or 0) > NOW then nb = not_before end
ix_set(iid, 'cb', number, 'cb_nb', nb, 'cb_try', 0, 'cb_max', max_attempts,
  'cb_retry', retry_ms, 'cb_dto', dial_timeout_ms, 'cb_sl', sl_at, 'target', '')
ix.cb, ix.cb_nb, ix.cb_try, ix.cb_max, ix.target = number, nb, '0', max_attempts, ''
fig_incr(ix.queue, 'cb_requested', 1)
emit(EV.callback_requested, iid, '', ix.queue,
  { number = number, not_before = tonumber(nb), waited_ms = NOW - num(ix.enq), from = 'call' })
enwait(iid, ix)
try_route(iid, ix)
if rang ~= '' then pull_for_agent(rang) end
return ok_ix(iid, false, 'applied')
