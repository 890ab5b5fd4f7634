-- ARGV: which, name, holder, ttl
-- which: 'outbox' | 'mailbox' | 'sip_node' | 'smpp' | 'sms'; name: the mailbox or node ('' for the outbox); ttl:
-- ms ('' = release).
-- Takes or renews a lease: one holder at a time (the event-log deliverer, so the CRM sees each
-- interaction's events in order; a mailbox's reader; the bridge to a SIP node; an SMPP bind). Releasing frees
-- it only for its holder.
local key
if which == 'outbox' then
  key = K.outbox_lease()
elseif which == 'mailbox' then
  key = K.email_lease(name)
elseif which == 'sip_node' then
  key = K.sip_lease(name)
elseif which == 'smpp' then
  key = K.smpp_lease(name)
elseif which == 'sms' then
  key = K.sms_lock(name)
else
  return err('INVALID', 'lease: unknown lease ' .. tostring(which))
end
local cur = redis.call('GET', key)
if ttl == '' then
  if cur == holder then redis.call('DEL', key) end
  return ok('0')
end
if not cur or cur == holder then
  redis.call('SET', key, holder, 'PX', tonumber(ttl))
  return ok('1')
end
return ok('0')
