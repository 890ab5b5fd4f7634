# Instructions of Redis for (a) the benchmark's 6-command EVALSHA and (b) a lifecycle's writes and
# reads as plain commands (three MULTI/EXEC pipelines: what a router holding its state outside Redis
# would still send it), on a copy of a 1,000-agent benchmark's data under callgrind.
import sys, uuid, random
exec(open('/tmp/prof/drive.py').read().split('port, prefix, N')[0].replace('/tmp/prof/cg/cg.%s.*', '/tmp/prof/cg/fl.%s.*'))
port, N = int(sys.argv[1]), int(sys.argv[2])
r = R(port)
THIN = """local i, out = 1, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1"""
thin_sha = None
MODE = sys.argv[3] if len(sys.argv) > 3 else 'plain'
def pipe_thin(cmds):
    flat = []
    for c in cmds:
        if c[0] in ('MULTI', 'EXEC'): continue
        flat.append(len(c)); flat.extend(c)
    return r.cmd('EVALSHA', thin_sha, 0, *flat)
def pipe(cmds):
    if MODE == 'thin': return pipe_thin(cmds)
    return pipe_plain(cmds)
def pipe_plain(cmds):
    out = b''
    for a in cmds:
        out += b'*%d\r\n' % len(a)
        for x in a:
            x = x if isinstance(x, bytes) else str(x).encode()
            out += b'$%d\r\n%s\r\n' % (len(x), x)
    r.s.sendall(out)
    return [r.read() for _ in cmds]
SCRIPT = """local k = KEYS[1]
 redis.call('ZADD', k .. ':z', ARGV[1], ARGV[1])
 local r = redis.call('ZRANGEBYSCORE', k .. ':z', '-inf', '+inf', 'LIMIT', 0, 1)
 redis.call('ZREM', k .. ':z', r[1])
 redis.call('HINCRBY', k .. ':h', 'n', 1)
 redis.call('XADD', k .. ':s', 'MAXLEN', '~', 1000, '*', 'f', ARGV[1])
 redis.call('HSET', k .. ':h2', 'last', ARGV[1])
 return 1"""
sha = r.cmd('SCRIPT', 'LOAD', SCRIPT)
thin_sha = r.cmd('SCRIPT', 'LOAD', THIN)
cg_mark('start')
for i in range(N):
    r.cmd('EVALSHA', sha, 1, 'bench:c%d' % (i % 50), i)
ev = cg_mark('evalsha') / N
agents = [k.split(':')[-1] for k in r.cmd('KEYS', 'sb:{default}:agent:*') if k.count(':') == 3][:200]
R0 = 'sb:{default}:'
now = 1796698920569
for i in range(N):
    iid = str(uuid.uuid4()); q = 'q%d' % random.randrange(100); a = random.choice(agents); pool = q + '#0'
    fields = ['ch', 'chat', 'cust', 'c%d' % i, 'subj', '', 'attrs', '{}', 'queue', q, 'pri', '0', 'enq', now, 'qenter', now,
              'qseq', 1, 'stage', 0, 'target', '', 'oseq', 1, 'tseq', 0, 'nmsg', 0, 'xn', 0, 'state', 'offered', 'agent', a,
              'pool', '', 'esc', '', 'xfer', '', 'czq', q, 'cz', 0, 't_queued', now, 'oexp', now + 20000, 't_offered', now,
              'dec', '{"via":"queue","pool":"%s","strategy":"longest_idle","idle_since":%d,"considered":1,"eligible":9,"at":%d,"agent":"%s"}' % (pool, now, now, a)]
    pipe([['MULTI'], ['HSET', R0 + 'ix:' + iid] + fields, ['SADD', R0 + 'qlive:' + q, iid], ['HINCRBY', R0 + 'agent:' + a, 'load_chat', 1],
          ['SADD', R0 + 'agent:' + a + ':work', iid], ['ZADD', R0 + 'timers', now + 20000, 'offer|%s|1' % iid],
          ['ZREM', R0 + 'avail:' + pool + ':chat', a], ['BITFIELD', R0 + 'figs:' + q + ':1', 'INCRBY', 'i64', '#0', 1, 'INCRBY', 'i64', '#1', 1],
          ['XADD', R0 + 'events', 'MAXLEN', '~', 1000000, '*', 'type', 'created', 'ix', iid, 'agent', '', 'queue', q, 'at', now, 'details', '{"channel":"chat","customer":"c%d","priority":0}' % i,
           '1.type', 'queued', '2.type', 'offered', '2.agent', a, '2.details', '{"expires":%d,"seq":1,"channel":"chat","decision":{}}' % (now + 20000)],
          ['XADD', R0 + 'inbox:bench', 'MAXLEN', '~', 100000, '*', 'agent', a, 'session', 's', 'kind', 'offer', 'data', '{"ix":"%s","expires":%d,"seq":1}' % (iid, now + 20000)],
          ['EXEC']])
    pipe([['MULTI'], ['HSET', R0 + 'ix:' + iid, 'state', 'active', 't_active', now + 3000, 'oexp', '', 'esc', ''], ['ZREM', R0 + 'timers', 'offer|%s|1' % iid],
          ['BITFIELD', R0 + 'figs:' + q + ':1', 'INCRBY', 'i64', '#0', 1, 'INCRBY', 'i64', '#2', 1, 'INCRBY', 'i64', '#3', 3000, 'INCRBY', 'i64', '#4', 1],
          ['XADD', R0 + 'events', 'MAXLEN', '~', 1000000, '*', 'type', 'accepted', 'ix', iid, 'agent', a, 'queue', q, 'at', now + 3000, 'details', '{"waited_ms":3000}'], ['EXEC']])
    pipe([['MULTI'], ['HSET', R0 + 'ix:' + iid, 'state', 'completed', 't_completed', now + 9000], ['HSET', R0 + 'agent:' + a, 'load_chat', 0, 'idle', now + 9000],
          ['SREM', R0 + 'agent:' + a + ':work', iid], ['SREM', R0 + 'qlive:' + q, iid], ['EXPIRE', R0 + 'ix:' + iid, 604800],
          ['BITFIELD', R0 + 'figs:' + q + ':1', 'INCRBY', 'i64', '#0', 1, 'INCRBY', 'i64', '#5', 1, 'INCRBY', 'i64', '#6', 6000],
          ['XADD', R0 + 'events', 'MAXLEN', '~', 1000000, '*', 'type', 'completed', 'ix', iid, 'agent', a, 'queue', q, 'at', now + 9000, 'details', '{"disposition":"bench","notes":"","channel":"chat","customer":"c%d"}' % i]]
         + [['ZADD', R0 + 'avail:' + 'q%d#0' % random.randrange(100) + ':chat', now + 9000, a] for _ in range(4)] + [['EXEC']])
lc = cg_mark(MODE) / N
what = {'plain': '3 MULTI/EXEC', 'thin': '3 EVALSHA of a script that only runs them'}[MODE]
print(f"EVALSHA (6 commands) {ev/1000:.1f} kIr; lifecycle of 31 commands as {what}: {lc/1000:.0f} kIr = {lc/ev:.1f}x EVALSHA")
