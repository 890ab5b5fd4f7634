# A variant library: HEAD's library text with the working tree's Lua sources in place of HEAD's.
import sys, subprocess, glob, os
name = sys.argv[1]  # 16 chars
base = open('/tmp/ab/switchboard_43e9dc343e0cb5c2.lua').read()
for p in glob.glob('/work/main/crates/engine/src/lua/*.lua'):
    rel = os.path.relpath(p, '/work/main')
    head = subprocess.run(['git', '-C', '/work/main', 'show', 'HEAD:' + rel], capture_output=True, text=True).stdout
    new = open(p).read()
    if head != new:
        assert head in base, rel
        base = base.replace(head, new)
base = base.replace('43e9dc343e0cb5c2', name)
open('/tmp/ab/var-%s.lua' % name, 'w').write(base)
