-- ARGV: aid, allow_update, queues_ver, name, token_hash, block, cap_voice, cap_chat, cap_sms, cap_email,
--       spec, ...pools
-- allow_update: '1' to update an existing agent; queues_ver: the queues' version the pools were
-- computed at; token_hash: the new desktop token's salted hash ('' keeps the old one); block: cross-channel blocking ('1'/'0'); spec: JSON; pools:
-- pool, skill score pairs (computed by the routing core).
local ver = redis.call('HGET', K.meta(), 'queues_ver') or '0'
if ver ~= queues_ver then return err('RETRY', 'queues changed while computing eligibility') end
local exists = redis.call('EXISTS', K.agent(aid)) == 1
if exists and allow_update ~= '1' then return err('EXISTS', 'id: agent "' .. aid .. '" already exists') end
-- A device is one agent's: a call event naming it must mean one agent.
local devices = cjson.decode(spec).devices or {}
for i, d in ipairs(devices) do
  local owner = redis.call('HGET', K.devices(), d)
  if owner and owner ~= aid then
    return err('EXISTS', 'devices[' .. (i - 1) .. ']: "' .. d .. '" is a device of agent "' .. owner .. '"')
  end
end
if not exists then
  agent_set(aid, 'presence', 'offline', 'reason', '', 'since', NOWS, 'idle', NOWS, 'wrapups', 0,
    'connected', 0, 'session', '', 'instance', '', 'token_hash', '',
    'load_voice', 0, 'load_chat', 0, 'load_sms', 0, 'load_email', 0)
  redis.call('SADD', K.agents(), aid)
end
local before = exists and redis.call('HGET', K.agent(aid), 'spec') or nil
if before then
  for _, d in ipairs(cjson.decode(before).devices or {}) do
    if redis.call('HGET', K.devices(), d) == aid then redis.call('HDEL', K.devices(), d) end
  end
end
for _, d in ipairs(devices) do redis.call('HSET', K.devices(), d, aid) end
agent_set(aid, 'name', name, 'block', block, 'cap_voice', cap_voice, 'cap_chat', cap_chat,
  'cap_sms', cap_sms, 'cap_email', cap_email, 'spec', spec)
if token_hash ~= '' then
  agent_set(aid, 'token_hash', token_hash)
  -- Written in clear by versions before tokens were hashed.
  agent_changed()
  redis.call('HDEL', K.agent(aid), 'token')
end
for _, pool in ipairs(redis.call('HKEYS', K.agent_pools(aid))) do
  for _, ch in ipairs(CHANNELS) do redis.call('ZREM', K.avail(pool, ch), aid) end
  redis.call('SREM', K.pool_agents(pool), aid)
end
redis.call('DEL', K.agent_pools(aid))
for i = 1, #pools, 2 do
  redis.call('HSET', K.agent_pools(aid), pools[i], pools[i + 1])
  redis.call('SADD', K.pool_agents(pools[i]), aid)
end
redis.call('HINCRBY', K.meta(), 'agents_ver', 1)
-- The specs never hold the token; the audit trail only says whether it changed.
local change = { after = spec, token_changed = token_hash ~= '' }
if exists then
  change.before = before
  emit(EV.agent_updated, '', aid, '', change)
else
  emit(EV.agent_created, '', aid, '', change)
end
pull_for_agent(aid)
if exists then return ok('0') end
return ok('1')
