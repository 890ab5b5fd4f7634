-- ARGV: agent, allow update ('1'), expected queues_ver, name, token ('' keeps), cross-channel block ('1'/'0'),
--       cap voice, chat, sms, email, spec json, then pool/skill-score pairs (computed by the routing core).
local aid = ARGV[1]
local ver = redis.call('HGET', K.meta(), 'queues_ver') or '0'
if ver ~= ARGV[3] then return err('RETRY', 'queues changed while computing eligibility') end
local key = K.agent(aid)
local exists = redis.call('EXISTS', key) == 1
if exists and ARGV[2] ~= '1' then return err('EXISTS', 'id: agent "' .. aid .. '" already exists') end
if not exists then
  redis.call('HSET', key, 'presence', 'offline', 'reason', '', 'since', NOW, 'idle', NOW, 'wrapups', 0,
    'connected', 0, 'session', '', 'instance', '', 'token', '',
    'load_voice', 0, 'load_chat', 0, 'load_sms', 0, 'load_email', 0)
  redis.call('SADD', K.agents(), aid)
end
redis.call('HSET', key, 'name', ARGV[4], 'block', ARGV[6], 'cap_voice', ARGV[7], 'cap_chat', ARGV[8],
  'cap_sms', ARGV[9], 'cap_email', ARGV[10], 'spec', ARGV[11])
if ARGV[5] ~= '' then redis.call('HSET', key, 'token', ARGV[5]) end
for _, pool in ipairs(redis.call('HKEYS', K.agent_pools(aid))) do
  for _, ch in ipairs(CHANNELS) do redis.call('ZREM', K.avail(pool, ch), aid) end
  redis.call('SREM', K.pool_agents(pool), aid)
end
redis.call('DEL', K.agent_pools(aid))
for i = 12, #ARGV, 2 do
  redis.call('HSET', K.agent_pools(aid), ARGV[i], ARGV[i + 1])
  redis.call('SADD', K.pool_agents(ARGV[i]), aid)
end
redis.call('HINCRBY', K.meta(), 'agents_ver', 1)
if exists then
  emit(EV.agent_updated, '', aid, '', {})
else
  emit(EV.agent_created, '', aid, '', {})
end
pull_for_agent(aid)
if exists then return ok('0') end
return ok('1')
