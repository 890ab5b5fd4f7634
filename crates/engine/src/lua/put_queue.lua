-- ARGV: name, allow_update, agents_ver, strategy, channels, priority, offer_ms, wrap_ms, sl_ms,
--       stages, steps, spec, overflow, calendar, crules, open, opens, sl_closed, ...members
-- allow_update: '1' to update an existing queue; agents_ver: the agents' version the members were
-- computed at; channels, overflow (targets): csv; stages: stage count; steps: compiled steps JSON;
-- spec: JSON; calendar: the calendar it keeps ('' = none, always open); crules: its closed rule
-- per channel (JSON, see closed_rule_of); open: '1' if its calendar is open now (or it has none),
-- opens: when it next opens if not (ms, '' = not in sight); sl_closed: '1' if its service level
-- counts closed time too; members: agent, stage, skill score
-- triples (computed by the routing core).
local ver = redis.call('HGET', K.meta(), 'agents_ver') or '0'
if ver ~= agents_ver then return err('RETRY', 'agents changed while computing eligibility') end
local key = K.queue(name)
local exists = redis.call('EXISTS', key) == 1
local before = exists and redis.call('HGET', key, 'spec') or nil
if exists and allow_update ~= '1' then return err('EXISTS', 'name: queue "' .. name .. '" already exists') end
for _, t in ipairs(split_csv(overflow)) do
  if t ~= name and redis.call('EXISTS', K.queue(t)) == 0 then
    return err('NOT_FOUND', 'escalation: overflow queue "' .. t .. '" does not exist')
  end
end
-- Checked here, with the write, so a calendar cannot be deleted between the check and the write.
if calendar ~= '' and redis.call('HEXISTS', K.calendars(), calendar) == 0 then
  return err('INVALID', 'calendar: no calendar named "' .. calendar .. '"')
end
-- Closed rules' overflow queues: checked here too, with the write.
local rules = cjson.decode(crules)
local by_index = {}
for ch, r in pairs(rules) do
  if r.a == 'overflow' and r.i then by_index[#by_index + 1] = { r.i, ch, r.q } end
end
table.sort(by_index, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
for _, e in ipairs(by_index) do
  local field = 'closed[' .. e[1] .. '].overflow_queue'
  local t = queue_cfg(e[3])
  if not t then return err('NOT_FOUND', field .. ': no queue named "' .. e[3] .. '"') end
  if not takes(t, e[2]) then
    return err('INVALID', field .. ': queue "' .. e[3] .. '" does not take ' .. e[2] .. ' interactions')
  end
end
local new_channels = {}
for _, c in ipairs(split_csv(channels)) do new_channels[c] = true end
local waiting = redis.call('ZRANGE', K.qwait(name), 0, -1)
local live = redis.call('SMEMBERS', K.qlive(name))
for _, iid in ipairs(waiting) do live[#live + 1] = iid end
for _, iid in ipairs(live) do
  local ch = redis.call('HGET', K.ix(iid), 'ch')
  if ch and not new_channels[ch] then
    return err('PRECONDITION', 'channels: ' .. ch .. ' interactions in "' .. name .. '" have not ended; cannot drop the channel yet')
  end
end
local old = queue_cfg(name)
local touched = {}
if old then
  -- Waiting sets are emptied too: the waiting interactions are filed again below.
  for _, iid in ipairs(live) do
    local ix = ix_get(iid)
    if ix and ix.state == 'queued' then unwait(iid, ix) end
  end
  drop_pools(name, old.stages, touched)
end
redis.call('HSET', key, 'strategy', strategy, 'channels', channels, 'pri', priority, 'offer_ms', offer_ms,
  'wrap_ms', wrap_ms, 'sl_ms', sl_ms, 'stages', stages, 'steps', steps, 'spec', spec, 'cal', calendar,
  'crules', crules, 'sl_closed', sl_closed)
redis.call('SADD', K.queues(), name)
QCACHE[name] = nil
local q = queue_cfg(name)
-- Open or closed as it was until set_open below decides.
write_route(name, q)
for i = 1, #members, 3 do
  local aid, pool = members[i], name .. '#' .. members[i + 1]
  redis.call('HSET', K.agent_pools(aid), pool, members[i + 2])
  redis.call('SADD', K.pool_agents(pool), aid)
  touched[aid] = true
end
-- Re-file waiting interactions (their stage may no longer exist) and cap the stage of the others,
-- so a later requeue lands in a pool that exists.
for _, iid in ipairs(live) do
  local ix = ix_get(iid)
  if ix and ix.state == 'queued' then
    enwait(iid, ix)
  elseif ix and num(ix.stage) >= q.stages then
    ix_set(iid, 'stage', q.stages - 1)
  end
end
redis.call('HINCRBY', K.meta(), 'queues_ver', 1)
if exists then
  emit(EV.queue_updated, '', '', name, { before = before, after = spec })
else
  emit(EV.queue_created, '', '', name, { after = spec })
end
for aid, _ in pairs(touched) do refresh_agent(aid) end
-- Its hours as of now (a queue without a calendar is always open): closing applies the new rules.
set_open(name, open == '1', opens)
for _, iid in ipairs(waiting) do try_route(iid) end
for aid, _ in pairs(touched) do pull_for_agent(aid) end
if exists then return ok('0') end
return ok('1')
