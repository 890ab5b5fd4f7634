-- ARGV: limit
-- Fires every due timer (up to limit) atomically; any instance may run it.
-- Returns ok(fired count, next due ms or '').
local function split_bar(s)
  local out = {}
  for part in string.gmatch(s, '[^|]+') do out[#out + 1] = part end
  return out
end

local forgiven = amnesty()

local function fire_offer(iid, seq)
  local ix = ix_get(iid)
  if not ix or ix.state ~= 'offered' or ix.oseq ~= seq then return end
  if forgiven > 0 then
    -- Its time ran out while Redis was out of reach: the agent could not accept. Back to the
    -- queue keeping its age, nobody excluded or made not ready; offered again at once.
    local aid = ix.agent
    revoke(iid, ix, 'outage')
    requeue(iid, ix, nil)
    try_route(iid)
    pull_for_agent(aid)
    return
  end
  miss_offer(iid, ix, 'timeout')
end

local function fire_escalation(iid, qseq, j)
  local ix = ix_get(iid)
  if not ix or ix.qseq ~= qseq or (ix.state ~= 'queued' and ix.state ~= 'offered') then return end
  local q = queue_cfg(ix.queue)
  if not q then return end
  local step = q.steps[j + 1]
  if not step then return end
  ix_set(iid, 'esc', '')
  ix.esc = ''
  if step.overflow then
    if not takes(queue_cfg(step.overflow), ix.ch) then
      emit(EV.escalation_failed, iid, '', ix.queue, { overflow = step.overflow, why = 'queue missing or does not take the channel' })
      return
    end
    emit(EV.overflowed, iid, '', ix.queue, { to_queue = step.overflow })
    move_to_queue(iid, ix, step.overflow)
  else
    local waiting = ix.state == 'queued' and (not ix.target or ix.target == '')
    if waiting then unwait(iid, ix) end
    ix_set(iid, 'stage', step.stage)
    ix.stage = tostring(step.stage)
    emit(EV.escalated, iid, '', ix.queue, { stage = step.stage })
    schedule_escalation(iid, ix, j + 1)
    if waiting then enwait(iid, ix) end
  end
  if ix.state == 'queued' then try_route(iid) end
end

local function fire_xfer(iid, tseq)
  local ix = ix_get(iid)
  if not ix or ix.state ~= 'queued' or ix.tseq ~= tseq or not ix.target or ix.target == '' then return end
  local waited_for = ix.target
  unwait(iid, ix)
  ix_set(iid, 'target', '', 'xfer', '')
  ix.target, ix.xfer = '', ''
  enwait(iid, ix)
  emit(EV.queued, iid, '', ix.queue, { stage = num(ix.stage), agent_wait_over = waited_for })
  try_route(iid)
end

local function fire_grace(aid, session)
  local a = redis.call('HMGET', K.agent(aid), 'session', 'connected', 'presence')
  if a[1] ~= session or a[2] == '1' or a[3] == 'offline' or not a[3] then return end
  go_offline(aid, 'stale')
end

-- A callback's window opened, or its retry delay passed: into its waiting set, at its place.
local function fire_callback(iid)
  local ix = ix_get(iid)
  if not ix or ix.state ~= 'queued' or (ix.pool or '') ~= '' or num(ix.cb_nb) > NOW then return end
  ix_set(iid, 'cb_nb', '')
  ix.cb_nb = ''
  unwait(iid, ix)
  enwait(iid, ix)
  try_route(iid, ix)
end

-- A callback's attempt the telephony system never reported on.
local function fire_dial_timeout(iid, n)
  local ix = ix_get(iid)
  if not ix or ix.state ~= 'active' or ix.cb_try ~= n or num(ix.cb_conn) > 0 or (ix.cb_call or '') == '' then return end
  callback_failed(iid, ix, 'dial_timeout')
end

local due = redis.call('ZRANGEBYSCORE', K.timers(), '-inf', NOW, 'LIMIT', 0, tonumber(limit))
for _, m in ipairs(due) do
  redis.call('ZREM', K.timers(), m)
  local p = split_bar(m)
  if p[1] == 'offer' then
    fire_offer(p[2], p[3])
  elseif p[1] == 'esc' then
    fire_escalation(p[2], p[3], tonumber(p[4]))
  elseif p[1] == 'wrap' then
    local ix = ix_get(p[2])
    if ix and ix.state == 'wrap_up' then end_wrap(p[2], ix) end
  elseif p[1] == 'xfer' then
    fire_xfer(p[2], p[3])
  elseif p[1] == 'cb' then
    fire_callback(p[2])
  elseif p[1] == 'cbd' then
    fire_dial_timeout(p[2], p[3])
  elseif p[1] == 'grace' then
    fire_grace(p[2], p[3])
  elseif p[1] == 'inst' and forgiven > 0 then
    -- Not dead: cut off like everyone. It has until the amnesty ends to heartbeat again.
    redis.call('ZADD', K.timers(), forgiven, m)
  elseif p[1] == 'inst' then
    release_instance(p[2], 'stale')
    redis.call('EXPIRE', K.inbox(p[2]), 3600)
    emit(EV.instance_lost, '', '', '', { instance = p[2] })
  end
end
local nxt = redis.call('ZRANGE', K.timers(), 0, 0, 'WITHSCORES')
return ok(tostring(#due), nxt[2] or '', NOWS)
