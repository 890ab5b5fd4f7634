import socket, sys, random, uuid, time
class R:
    def __init__(s, port):
        s.s = socket.create_connection(('127.0.0.1', port)); s.f = s.s.makefile('rb')
    def cmd(s, *a):
        out = b'*%d\r\n' % len(a)
        for x in a:
            x = x if isinstance(x, bytes) else str(x).encode()
            out += b'$%d\r\n%s\r\n' % (len(x), x)
        s.s.sendall(out); return s.read()
    def read(s):
        l = s.f.readline(); t, v = l[:1], l[1:-2]
        if t == b'+': return v.decode()
        if t == b'-': raise Exception(v.decode())
        if t == b':': return int(v)
        if t == b'$':
            n = int(v)
            if n < 0: return None
            d = s.f.read(n + 2)[:-2]; return d.decode()
        if t == b'*':
            n = int(v)
            if n < 0: return None
            return [s.read() for _ in range(n)]
import subprocess, glob, os
CG = os.environ.get('CGPID')
def cg_mark(tag):
    if not CG: return 0
    subprocess.run(['callgrind_control', '-d', tag, CG], capture_output=True)
    f = max(glob.glob('/tmp/prof/cg/cg.%s.*' % CG), key=os.path.getmtime)
    ir = 0
    for l in open(f):
        if l.startswith('totals:'): ir = int(l.split()[1])
    subprocess.run(['callgrind_control', '-z', CG], capture_output=True)
    return ir
def fstat(r):
    info = r.cmd('INFO', 'commandstats')
    for l in info.splitlines():
        if l.startswith('cmdstat_fcall:'):
            kv = dict(x.split('=') for x in l.split(':', 1)[1].split(','))
            return int(kv['calls']), int(kv['usec'])
    return 0, 0
def cmdcount(r):
    info = r.cmd('INFO', 'commandstats'); n = 0
    for l in info.splitlines():
        if l.startswith('cmdstat_') and not l.startswith('cmdstat_info') and not l.startswith('cmdstat_fcall'):
            n += int(l.split('calls=')[1].split(',')[0])
    return n
port, prefix, N = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r = R(port); random.seed(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
meta = 'sb:{default}:meta'
def F(op, *args): return r.cmd('FCALL', prefix + op, 1, meta, *args)
res = {}
made = []
c0, u0 = fstat(r); k0 = cmdcount(r); cg_mark('start')
for i in range(N):
    iid = str(uuid.uuid4())
    q = 'q%d' % random.randrange(100)
    ch = random.choice(['chat', 'email', 'sms'])
    rep = F('create', '', '', '', '', iid, '', ch, 'c%d' % i, '', '{}', q, '', '', '', '0', 'hold', '')
    if rep[0] != 'ok': continue
    n = int(rep[3]); h = dict(zip(rep[4:4+n:2], rep[5:5+n:2]))
    if h.get('state') == 'offered': made.append((iid, h['agent']))
ir_create = cg_mark('create'); c1, u1 = fstat(r); k1 = cmdcount(r)
res['create'] = ((u1-u0)/N, (k1-k0-(2 if 0 else 0))/N)
sess = {}
for iid, a in made:
    s = r.cmd('HGET', 'sb:{default}:agent:' + a, 'session') or ''
    sess[a] = s
c1, u1 = fstat(r); k1 = cmdcount(r); cg_mark('x')
for iid, a in made:
    rep = F('accept', a, sess[a], '', '', a, iid)
ir_accept = cg_mark('accept'); c2, u2 = fstat(r); k2 = cmdcount(r)
res['accept'] = ((u2-u1)/len(made), (k2-k1)/len(made))
for iid, a in made:
    rep = F('complete', a, sess[a], '', '', a, iid, 'bench', '')
ir_complete = cg_mark('complete'); c3, u3 = fstat(r); k3 = cmdcount(r)
res['complete'] = ((u3-u2)/len(made), (k3-k2)/len(made))
tot = sum(v[0] for v in res.values())
if CG:
    print(f"offered {len(made)}/{N}; kIr create {ir_create/N/1000:.0f} accept {ir_accept/len(made)/1000:.0f} complete {ir_complete/len(made)/1000:.0f} lifecycle {(ir_create/N+ir_accept/len(made)+ir_complete/len(made))/1000:.0f}; cmds " + " ".join(f"{k} {v[1]:.1f}" for k, v in res.items()))
    sys.exit(0)
print(f"offered {len(made)}/{N}; " + ", ".join(f"{k} {v[0]:.1f}us {v[1]:.1f}cmds" for k, v in res.items()) + f"; total {tot:.1f}us")
