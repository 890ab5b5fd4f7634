#!/bin/bash
VP=${VP:?set VP to the pid of the valgrind running redis-server}
run() { echo "$1 seed $3: $(CGPID=$VP python3 /tmp/prof/drive.py 7402 $1 $2 $3)"; }
for seed in 4 5 6; do
  for p in "$@"; do run $p 150 $seed; done
done
echo done
