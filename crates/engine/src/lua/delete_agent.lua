-- ARGV: aid
local a = hmap(K.agent(aid))
if not a then return err('NOT_FOUND', 'agent_id: no agent "' .. aid .. '"') end
local work = redis.call('SCARD', K.agent_work(aid))
if work > 0 then
  return err('PRECONDITION', 'agent_id: "' .. aid .. '" holds ' .. work .. ' interaction(s); complete or transfer them first')
end
if a.connected == '1' then notify(aid, PUSH.closed, { reason = 'deleted' }) end
if a.session and a.session ~= '' then redis.call('ZREM', K.timers(), 'grace|' .. aid .. '|' .. a.session) end
if a.instance and a.instance ~= '' then redis.call('SREM', K.inst_agents(a.instance), aid) end
for _, pool in ipairs(redis.call('HKEYS', K.agent_pools(aid))) do
  for _, ch in ipairs(CHANNELS) do redis.call('ZREM', K.avail(pool, ch), aid) end
  redis.call('SREM', K.pool_agents(pool), aid)
end
if a.spec then
  for _, d in ipairs(cjson.decode(a.spec).devices or {}) do
    if redis.call('HGET', K.devices(), d) == aid then redis.call('HDEL', K.devices(), d) end
  end
end
local waiting_for = redis.call('ZRANGE', K.await(aid), 0, -1)
agent_changed()
redis.call('DEL', K.agent(aid), K.agent_pools(aid), K.agent_work(aid), K.await(aid))
redis.call('SREM', K.agents(), aid)
redis.call('HINCRBY', K.meta(), 'agents_ver', 1)
emit(EV.agent_deleted, '', aid, '', { before = a.spec })
for _, iid in ipairs(waiting_for) do
  local ix = ix_get(iid)
  if ix and ix.state == 'queued' then
    redis.call('ZREM', K.qwait(ix.queue), iid)
    if ix.xfer and ix.xfer ~= '' then redis.call('ZREM', K.timers(), ix.xfer) end
    ix_set(iid, 'target', '', 'xfer', '')
    ix.target, ix.xfer = '', ''
    enwait(iid, ix)
    try_route(iid)
  end
end
return ok()
