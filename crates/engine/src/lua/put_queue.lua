-- ARGV: name, allow update ('1'), expected agents_ver, strategy, channels csv, priority, offer ms, wrap-up ms,
--       service-level ms, stage count, compiled steps json, spec json, overflow targets csv,
--       then agent/stage/skill-score triples (computed by the routing core).
local name = ARGV[1]
local ver = redis.call('HGET', K.meta(), 'agents_ver') or '0'
if ver ~= ARGV[3] then return err('RETRY', 'agents changed while computing eligibility') end
local key = K.queue(name)
local exists = redis.call('EXISTS', key) == 1
if exists and ARGV[2] ~= '1' then return err('EXISTS', 'name: queue "' .. name .. '" already exists') end
for _, t in ipairs(split_csv(ARGV[13])) do
  if t ~= name and redis.call('EXISTS', K.queue(t)) == 0 then
    return err('NOT_FOUND', 'escalation: overflow queue "' .. t .. '" does not exist')
  end
end
local new_channels = {}
for _, c in ipairs(split_csv(ARGV[5])) do new_channels[c] = true end
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
redis.call('HSET', key, 'strategy', ARGV[4], 'channels', ARGV[5], 'pri', ARGV[6], 'offer_ms', ARGV[7],
  'wrap_ms', ARGV[8], 'sl_ms', ARGV[9], 'stages', ARGV[10], 'steps', ARGV[11], 'spec', ARGV[12])
redis.call('HSET', K.qroute(), name, ARGV[4] .. '|' .. ARGV[5])
redis.call('SADD', K.queues(), name)
QCACHE[name] = nil
RCACHE[name] = nil
local q = queue_cfg(name)
for i = 14, #ARGV, 3 do
  local aid, pool = ARGV[i], name .. '#' .. ARGV[i + 1]
  redis.call('HSET', K.agent_pools(aid), pool, ARGV[i + 2])
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
    redis.call('HSET', K.ix(iid), 'stage', q.stages - 1)
  end
end
redis.call('HINCRBY', K.meta(), 'queues_ver', 1)
if exists then
  emit(EV.queue_updated, '', '', name, {})
else
  emit(EV.queue_created, '', '', name, {})
end
for aid, _ in pairs(touched) do refresh_agent(aid) end
for _, iid in ipairs(waiting) do try_route(iid) end
for aid, _ in pairs(touched) do pull_for_agent(aid) end
if exists then return ok('0') end
return ok('1')
