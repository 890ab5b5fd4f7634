-- ARGV: conv, iid, ours, customer, out, keyword
-- A customer opted out of texts from one of our numbers (out = '1', STOP) or back in ('0',
-- START). The mark and its event (on the interaction the text arrived on, so the CRM records it
-- with the customer) change together; repeating either changes nothing.
local key = K.sms_optout(conv)
local was = redis.call('EXISTS', key) == 1
local now_out = out == '1'
if was == now_out then return ok('0') end
if now_out then
  redis.call('SET', key, NOWS)
else
  redis.call('DEL', key)
end
local queue = ''
local ix = iid ~= '' and ix_get(iid) or nil
if ix then queue = ix.queue end
emit(EV.opt_out, iid, '', queue, { number = ours, customer = customer, opted_out = now_out, keyword = keyword })
return ok('1')
