#!/bin/bash
python3 -c "
import sys
sys.argv=['x','0','x','0']
exec(open('/tmp/prof/drive.py').read().split('port, prefix, N')[0])
r=R(7402); print(r.cmd('FUNCTION','LOAD','REPLACE',open('$1').read()))"
