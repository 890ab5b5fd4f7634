import re, sys, bisect, collections
syms=[]
for l in open('/tmp/prof/syms.txt'):
    p=l.split()
    if len(p)==3: syms.append((int(p[0],16),p[2]))
syms.sort(); addrs=[s[0] for s in syms]
def label(obj, n):
    m = re.match(r"0x([0-9a-f]+)", n)
    if not m or 'redis' not in obj: return n
    v=int(m.group(1),16); i=bisect.bisect_right(addrs,v)-1
    return '~'+syms[i][1] if i>=0 else n
def selfcost(f):
    names={}; objs={}; cur=None; curobj=''; c=collections.Counter(); in_call=False
    def nm(s, tab):
        m=re.match(r'\((\d+)\)(?: (.*))?', s)
        if m:
            if m.group(2): tab[m.group(1)]=m.group(2)
            return tab.get(m.group(1), s)
        return s
    for line in open(f):
        line=line.rstrip('\n')
        if line.startswith('ob='): curobj=nm(line[3:], objs); continue
        if line.startswith('fn='): cur=label(curobj, nm(line[3:], names)); continue
        if line.startswith('cfn=') or line.startswith('cob=') or line.startswith('cfi=') or line.startswith('cfl='):
            if line.startswith('cfn='): nm(line[4:], names)
            if line.startswith('cob='): nm(line[4:], objs)
            continue
        if line.startswith('calls='): in_call=True; continue
        if line and (line[0].isdigit() or line[0] in '+-*'):
            parts=line.split()
            if in_call: in_call=False; continue
            if len(parts)>=2: c[cur]+=int(parts[1])
    return c
a=selfcost(sys.argv[1]); b=selfcost(sys.argv[2])
keys=sorted(set(a)|set(b), key=lambda k: -(b[k]-a[k]))
print('total', sum(a.values()), sum(b.values()))
for k in keys[:15]: print(f"{b[k]-a[k]:>+10} {a[k]:>11} {b[k]:>11} {k}")
print('...')
for k in keys[-8:]: print(f"{b[k]-a[k]:>+10} {a[k]:>11} {b[k]:>11} {k}")
