-- ARGV: inst, mode
-- mode: 'start' | 'stop' | ''. An instance that stops heartbeating is presumed dead after the
-- grace period.
-- 'start': a process starting under this id. Every session a previous run held is gone (a crash
-- leaves them marked connected, and this process's heartbeats would keep them so): their agents
-- go offline now and their offers back to the queue.
-- 'stop': a graceful stop. Sessions whose own end was not recorded (their tasks were cut short)
-- end here as theirs would have: offers back to the queue, agents through the grace period.
local member = 'inst|' .. inst
if mode == 'stop' then
  for _, h in ipairs(held_sessions(inst)) do end_session(h[1], h[2], inst, true) end
  redis.call('ZREM', K.timers(), member)
  redis.call('DEL', K.inbox(inst))
  return ok(NOWS, '0')
end
local released = 0
if mode == 'start' then
  -- What the inbox held was for the previous run's sessions.
  redis.call('DEL', K.inbox(inst))
  released = release_instance(inst, 'instance_restarted')
  if released > 0 then emit(EV.instance_restarted, '', '', '', { instance = inst, released = released }) end
end
amnesty()
redis.call('SET', K.beat(), NOW)
redis.call('ZADD', K.timers(), NOW + GRACE_MS, member)
return ok(NOWS, tostring(released))
