import json, sys, re, collections, statistics
d = sys.argv[1]
# slowlog: per function durations
durs = collections.defaultdict(list)
for line in open(d + '/slowlog.txt'):
    line = line.strip()
    if not line: continue
    for e in json.loads(line):
        args = e[3]
        if args and args[0].upper() == 'FCALL':
            name = args[1].split('_', 2)[-1]
            durs[name].append(e[2])
        else:
            durs['(direct) ' + args[0].lower()].append(e[2])
print("function: calls, mean us, p50")
for k, v in sorted(durs.items(), key=lambda kv: -sum(kv[1])):
    print(f"  {k}: {len(v)}, {statistics.mean(v):.1f}, {statistics.median(v):.0f}")
# monitor: per function command lists
seqs = collections.defaultdict(collections.Counter)
ncalls = collections.Counter()
cur = None
examples = {}
ex = []
for line in open(d + '/monitor.txt'):
    m = re.match(r'(\d+\.\d+) \[\d+ ([^\]]+)\] "([A-Za-z]+)"(?: "([^"]*)")?', line)
    if not m: continue
    ts, who, cmd, a1 = m.groups()
    if who != 'lua':
        if cur and cur not in examples: examples[cur] = ex
        cur = None
        if cmd.upper() == 'FCALL':
            cur = a1.split('_', 2)[-1]; ncalls[cur] += 1; ex = [line.strip()[:220]]
        continue
    if cur:
        key = re.sub(r'sb:\{default\}:', '', a1 or '')
        key = re.sub(r'[0-9a-f]{8}-[0-9a-f-]{27}', '<ix>', key)
        key = re.sub(r'^(agent_pools|agent|work|avail|wait|pool_agents|qwait|qlive|fig|queue|inbox|await):.*', r'\1:*', key)
        seqs[cur][cmd.upper() + ' ' + key] += 1
        ex.append(line.strip()[:220])
for f in ncalls:
    n = ncalls[f]
    tot = sum(seqs[f].values())
    print(f"\n{f}: {n} calls, {tot/n:.1f} commands per call")
    for k, c in seqs[f].most_common():
        print(f"   {c/n:5.2f}  {k}")
json.dump(examples, open(d + '/examples.json', 'w'), indent=1)
