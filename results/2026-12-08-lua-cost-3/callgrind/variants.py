# The variant libraries of 2-*.txt and 3-*.txt: the after build's library (FUNCTION LIST WITHCODE
# from its daemon, EVENTS_MAXLEN set to the benchmark's 1000000) with one change taken back each.
import sys
src = open('/tmp/ab/after.lua').read()
D = '4a9d6dab48fe1ad6'

def var(name, pairs, s=None):
    s = s or src
    for a, b in pairs:
        assert s.count(a) == 1, (name, a[:60])
        s = s.replace(a, b)
    open('/tmp/ab/%s.lua' % name, 'w').write(s.replace(D, name))

# v1: figures as before (one HINCRBY per counter, TTL on a counter's first write), no BITFIELD.
i = src.index('local function fig_incr(queue, field, n)')
end = '  FIGBUF, FIGQ = {}, {}\nend\n'
e = src.index(end, src.index('local function flush_figures()')) + len(end)
old = '''local function fig_incr(queue, field, n)
  if not queue or queue == '' then return end
  local key = K.fig(queue, tostring(math.floor(NOW / 60000)))
  if redis.call('HINCRBY', key, field, n) == n then
    redis.call('EXPIRE', key, FIG_TTL_S)
  end
end
local function flush_figures() end
'''
var('00000000000000v1', [], src[:i] + old + src[e:])
# v2: no ASTART (every refresh takes the agent out of the sets it cannot take, as before).
var('00000000000000v2', [("  ACACHE, ASTART = {}, {}\n", "  ACACHE, ASTART = {}, nil\n")])
# v3: a completion releases the agent as before (HINCRBY of the load, then HSET of idle; no read first).
var('00000000000000v3', [("""    agent_route(aid)
    release(aid, ix.ch, iid, 'idle', NOWS)
  end""", """    release(aid, ix.ch, iid)
    agent_set(aid, 'idle', NOWS)
  end""")])
# v4: the exclusion set deleted at the end whatever `xn` says.
var('00000000000000v4', [("  if ix.xn ~= '0' then redis.call('DEL', K.ix_excl(iid)) end", "  redis.call('DEL', K.ix_excl(iid))")])

# Upper bounds (8-*.txt): what a part costs, by the after library without it (not for use).
# c1: pushes carry no interaction (the reply then reads the hash itself).
var('00000000000000c1', [("local function carry_ix(payload, iid)\n", "local function carry_ix(payload, iid)\n  if true then return end\n")])
# c3: no figures at all.
var('00000000000000c3', [("local function fig_incr(queue, field, n)\n", "local function fig_incr(queue, field, n)\n  if true then return end\n")])
# c4: events without details (no JSON encoding of them).
var('00000000000000c4', [("  local d = type(details) == 'string' and details or cjson.encode(details or {})\n", "  local d = '{}'\n")])
