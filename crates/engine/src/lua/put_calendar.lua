-- ARGV: name, allow_update, spec
-- allow_update: '1' to replace an existing calendar; spec: the calendar as JSON (the engine checked it).
local before = redis.call('HGET', K.calendars(), name)
if before and allow_update ~= '1' then return err('EXISTS', 'name: calendar "' .. name .. '" already exists') end
redis.call('HSET', K.calendars(), name, spec)
-- Every instance's opening-hours watch reads the calendars again when this changes.
redis.call('HINCRBY', K.meta(), 'calendars_ver', 1)
if before then
  emit(EV.calendar_updated, '', '', '', { calendar = name, before = before, after = spec })
  return ok('0')
end
emit(EV.calendar_created, '', '', '', { calendar = name, after = spec })
return ok('1')
