-- ARGV: name, open, opens
-- open: '1' to open the queue, '0' to close it; opens: when a closed queue next opens (ms, '' =
-- not in sight). Idempotent: returns ok('1') only for the call that changed the state (see
-- set_open in lib.lua for what closing and opening do).
if not queue_cfg(name) then return err('NOT_FOUND', 'queue: no queue named "' .. name .. '"') end
if set_open(name, open == '1', opens) then return ok('1') end
return ok('0')
