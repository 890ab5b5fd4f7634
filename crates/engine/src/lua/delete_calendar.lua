-- ARGV: name
local before = redis.call('HGET', K.calendars(), name)
if not before then return err('NOT_FOUND', 'name: no calendar named "' .. name .. '"') end
-- A queue naming a calendar that is gone would have no hours at all: refuse instead.
local users = {}
for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
  if redis.call('HGET', K.queue(q), 'cal') == name then users[#users + 1] = q end
end
if #users > 0 then
  table.sort(users)
  return err('PRECONDITION', 'name: calendar "' .. name .. '" is kept by queue(s) "' .. table.concat(users, '", "')
    .. '"; give them another calendar or none first')
end
redis.call('HDEL', K.calendars(), name)
-- Every instance's opening-hours watch reads the calendars again when this changes.
redis.call('HINCRBY', K.meta(), 'calendars_ver', 1)
emit(EV.calendar_deleted, '', '', '', { calendar = name, before = before })
return ok()
