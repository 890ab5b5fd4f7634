import re, sys
def rows(f):
    out = {}
    for l in open(f + '/bench.md'):
        c = [x.strip() for x in l.split('|')]
        if len(c) > 14 and (c[1].startswith('created') or c[1].startswith('freed') or c[1].startswith('agents ready')):
            out[c[1]] = c
        m = re.match(r'- (.*?): (.*)', l)
        if m and m.group(1) in out:
            fc = re.search(r'fcall [0-9.]+ \((\d+) µs\)', m.group(2))
            out[m.group(1)].append(fc.group(1) if fc else '?')
    return out
for f in sys.argv[1:]:
    head = open(f + '/bench.md').readline()
    ev = int(re.search(r'(\d+) EVALSHA/s', head).group(1))
    print(f"{f}: EVALSHA {ev}/s = {1e6/ev:.1f} µs each")
    for k, c in rows(f).items():
        print(f"   {k:40s} dec/s {c[6]:>5s} ({c[7]}) cmds {c[12]:>5s} redisCPU {c[13]:>4s} µs = {float(c[13])/(1e6/ev):.0f}x evalsha; fcall {c[-1]} µs")
