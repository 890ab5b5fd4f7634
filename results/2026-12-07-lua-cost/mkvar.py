import sys, re
src = open('lib-orig.lua').read()
name = sys.argv[1]; muts = sys.argv[2:]
s = src.replace('82e8afba35b4b929', name)
def sub(old, new):
    global s
    assert old in s, old
    s = s.replace(old, new, 1)
for m in muts:
    if m == 'qhmget':
        sub("  local h = hmap(K.queue(name))\n  if not h then",
            "  local QF = { 'strategy','channels','pri','offer_ms','wrap_ms','sl_ms','stages','steps','cal','closed','opens','closed_ms','closed_at','sl_closed','crules' }\n  local r = redis.call('HMGET', K.queue(name), unpack(QF))\n  local h = nil\n  if r[1] then h = {} for i, f in ipairs(QF) do h[f] = r[i] or nil end end\n  if not h then")
    if m == 'nofig':
        sub("local function fig_incr(queue, field, n)\n", "local function fig_incr(queue, field, n)\n  do return end\n")
    if m == 'noemit':
        sub("local function emit(typ, iid, aid, queue, details)\n", "local function emit(typ, iid, aid, queue, details)\n  do return end\n")
    if m == 'noxadd':  # keep cjson, drop the XADD
        sub("  if EVENTS_MAXLEN > 0 then\n    redis.call('XADD', K.events(), 'MAXLEN'", "  if false then\n    redis.call('XADD', K.events(), 'MAXLEN'")
        sub("  else\n    redis.call('XADD', K.events(), '*', unpack(fields))", "  elseif false then\n    redis.call('XADD', K.events(), '*', unpack(fields))")
    if m == 'carry':
        sub("local function carry_ix(payload, iid)\n  local h = redis.call('HGETALL', K.ix(iid))",
            "local CARRIED = {}\nlocal function carry_ix(payload, iid)\n  local h = redis.call('HGETALL', K.ix(iid))\n  CARRIED = { iid = iid, h = h }")
        sub("  local out = { 'ok', ... }\n  local h = redis.call('HGETALL', K.ix(iid))",
            "  local out = { 'ok', ... }\n  local h = (CARRIED.iid == iid and CARRIED.h) or redis.call('HGETALL', K.ix(iid))")
open('var-%s.lua' % name, 'w').write(s)
