-- ARGV: reason, ...iids
-- Right to erasure: each interaction still open ends as if the customer had left (`reason`), then
-- its thread and what names the customer go. The hash stays, blank, until it expires like any
-- ended interaction, so counts and the agent's wrap-up are undisturbed. An "erased" event tells
-- the CRM to blank what it holds of it and whatever of it arrives later.
local n, ended = 0, 0
for _, iid in ipairs(iids) do
  local ix = ix_get(iid)
  if ix then
    if ix.state == 'queued' or ix.state == 'offered' then
      abandon(iid, ix, reason)
      ended = ended + 1
    elseif ix.state == 'active' then
      ix_set(iid, 'end_reason', reason)
      emit(EV.ended_by_customer, iid, ix.agent, ix.queue, { reason = reason })
      end_active(iid, ix, 'customer')
      local state = redis.call('HGET', K.ix(iid), 'state')
      notify(ix.agent, PUSH.ended, { ix = iid, reason = reason, state = state })
      ended = ended + 1
    end
    ix_changed()
    redis.call('DEL', K.ix_msgs(iid), K.email_conv(iid))
    -- An SMS conversation's map names the customer's number (an opt-out, a record the customer
    -- asked us to keep honouring, stays).
    if ix.ch == 'sms' and ix.cust and ix.cust ~= '' then
      local ok_attrs, attrs = pcall(cjson.decode, ix.attrs or '{}')
      if ok_attrs and type(attrs) == 'table' and attrs['sms.number'] then
        local conv = K.sms_conv(attrs['sms.number'] .. '|' .. ix.cust)
        if redis.call('GET', conv) == iid then redis.call('DEL', conv) end
      end
    end
    ix_set(iid, 'cust', '', 'subj', '', 'attrs', '{}', 'notes', '', 'erased', '1')
    redis.call('ZREM', K.chat_live(), iid)
    emit(EV.erased, iid, '', ix.queue, {})
    n = n + 1
  end
end
return ok(tostring(n), tostring(ended))
