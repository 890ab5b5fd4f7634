import re, collections, sys, bisect
f = sys.argv[1]
syms=[]
for l in open('/tmp/prof/syms.txt'):
    p=l.split()
    if len(p)==3: syms.append((int(p[0],16),p[2]))
syms.sort(); addrs=[s[0] for s in syms]
def label(n):
    m = re.match(r"0x([0-9a-f]+)", n)
    if not m: return n
    v=int(m.group(1),16); i=bisect.bisect_right(addrs,v)-1
    return f"{n}(~{syms[i][1]}+{v-syms[i][0]:#x})"
names = {}; cur = None; selfc = collections.Counter(); incl = collections.Counter(); in_call = None
def nm(s):
    m = re.match(r'\((\d+)\)(?: (.*))?', s)
    if m:
        if m.group(2): names[m.group(1)] = m.group(2)
        return names.get(m.group(1), s)
    return s
for line in open(f):
    line = line.rstrip('\n')
    if line.startswith('fn='): cur = nm(line[3:]); continue
    if line.startswith('cfn='): cfn = nm(line[4:]); continue
    if line.startswith('calls='): in_call = cfn; continue
    if line and (line[0].isdigit() or line[0] in '+-*'):
        parts = line.split()
        if len(parts) >= 2:
            if in_call:
                if in_call != cur: incl[in_call] += int(parts[1])
                in_call = None
            else: selfc[cur] += int(parts[1])
tot = sum(selfc.values())
print('total', tot)
want = sys.argv[2].split(',') if len(sys.argv) > 2 else None
print('--- inclusive')
for k, v in incl.most_common(60):
    print(f"{v/tot*100:5.1f}% {label(k)}")
print('--- self')
for k, v in selfc.most_common(25): print(f"{v/tot*100:5.1f}% {label(k)}")
