-- ARGV: reply, pid, state, rank
-- One part's delivery state on a reply's sending record (an SMS sent in parts gets receipts per
-- part), then the whole record as field/value pairs for the roll-up. A part keeps the highest-
-- ranked state reported for it (its rank beside it, `r:<id>`): an SMSC may send a part's receipts
-- out of order (an ENROUTE after its DELIVRD), and a late one taking the part back would keep
-- the reply from ever rolling up to delivered.
local key = K.sms_out(reply)
if num(redis.call('HGET', key, 'r:' .. pid)) < num(rank) then
  redis.call('HSET', key, 'p:' .. pid, state, 'r:' .. pid, rank)
end
return ok(unpack(redis.call('HGETALL', key)))
