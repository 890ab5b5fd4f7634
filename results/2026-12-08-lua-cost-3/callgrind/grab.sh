#!/bin/bash
# Copies of a running 1,000-agent benchmark's Redis, every 2 s (g1.rdb, g2.rdb, ...): start it,
# then this with the port of its newest redis-server (the point's, after the ceiling's).
BIN=${BIN:-/tmp/bin-before/switchboard-bench}
$BIN --agents 1000 --interactions 5000 --backlog 20000 --cti off --latency-rates 0 --rate 300 --out /tmp/bdump > /tmp/bdump.log 2>&1 &
sleep 25
P=$(ps aux --sort=start_time | grep "[r]edis-server 127" | tail -1 | sed 's/.*://')
D=$(redis-cli -p $P config get dir | tail -1); F=$(redis-cli -p $P config get dbfilename | tail -1)
for i in $(seq 1 25); do
  redis-cli -p $P bgsave >/dev/null 2>&1 || break
  sleep 2
  cp $D/$F /tmp/prof/g$i.rdb
  echo "$i $(redis-cli -p $P dbsize) $(redis-cli -p $P info commandstats | grep cmdstat_fcall | cut -d, -f1)"
done
