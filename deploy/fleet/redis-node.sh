#!/bin/sh
# Starts one Redis server or Sentinel of deploy/compose-fleet.yaml.
#
#   redis-node.sh server            a Redis server; with REDIS_REPLICA_OF set, a replica of it
#   redis-node.sh sentinel          a Sentinel watching REDIS_PRIMARY as "mymaster"
#
# Sentinels rewrite their config file (what they learnt: replicas, other Sentinels, the current
# primary, the epoch), and after a failover they rewrite the servers' files too (who replicates
# whom). So each node writes its own file once, into its own volume, and from then on starts from
# what is there: a restarted node keeps its role instead of going back to the one it began with.
# Delete the volumes to start over (e.g. after changing REDIS_PASSWORD, which is in the files).
#
# Environment:
#   REDIS_PASSWORD     required: Redis's requirepass, masterauth and the Sentinels' auth-pass
#   NODE_HOST          required: the name the others reach this node by (its compose service)
#   REDIS_REPLICA_OF   server: the host of the primary to replicate at first (empty: a primary)
#   REDIS_PRIMARY      sentinel: the host of the primary at first
#   REDIS_PRIMARY_PORT default 6379
#   PORT               default 6379 (server) or 26379 (sentinel)
#   SENTINEL_QUORUM    default 2: Sentinels that must agree the primary is down
#   DATA_DIR           default /data
set -eu

: "${REDIS_PASSWORD:?REDIS_PASSWORD must be set}"
: "${NODE_HOST:?NODE_HOST must be set}"
dir=${DATA_DIR:-/data}
primary_port=${REDIS_PRIMARY_PORT:-6379}

# The official image's entrypoint drops root for the redis user (and owns /data for it); run
# outside that image (a test on a host), start the server directly.
start() {
    if command -v docker-entrypoint.sh >/dev/null 2>&1; then
        exec docker-entrypoint.sh "$@"
    fi
    exec "$@"
}

case "${1:-}" in
server)
    conf=$dir/redis.conf
    if [ ! -f "$conf" ]; then
        {
            echo "port ${PORT:-6379}"
            echo "dir $dir"
            # Durability as in deploy/compose.yaml: a crash loses at most about a second.
            echo "appendonly yes"
            echo "appendfsync everysec"
            # Routing state must never be evicted: refuse writes rather than drop keys.
            echo "maxmemory 1gb"
            echo "maxmemory-policy noeviction"
            echo "requirepass \"$REDIS_PASSWORD\""
            # Also on the first primary: after a failover it comes back as a replica.
            echo "masterauth \"$REDIS_PASSWORD\""
            # Announce the service name, not the container's address, so what Sentinel hands out
            # stays valid when a container is recreated with a new address.
            echo "replica-announce-ip $NODE_HOST"
            if [ -n "${REDIS_REPLICA_OF:-}" ]; then
                echo "replicaof $REDIS_REPLICA_OF $primary_port"
            fi
        } >"$conf.new"
        mv "$conf.new" "$conf"
    fi
    start redis-server "$conf"
    ;;
sentinel)
    : "${REDIS_PRIMARY:?REDIS_PRIMARY must be set}"
    conf=$dir/sentinel.conf
    if [ ! -f "$conf" ]; then
        {
            echo "port ${PORT:-26379}"
            echo "dir $dir"
            # Host names everywhere (servers, Sentinels, what clients are told): resolve-hostnames
            # must come before the monitor line that names a host.
            echo "sentinel resolve-hostnames yes"
            echo "sentinel announce-hostnames yes"
            echo "sentinel announce-ip $NODE_HOST"
            echo "sentinel monitor mymaster $REDIS_PRIMARY $primary_port ${SENTINEL_QUORUM:-2}"
            echo "sentinel auth-pass mymaster \"$REDIS_PASSWORD\""
            # A primary silent this long is down for this Sentinel; the quorum makes it a failover.
            echo "sentinel down-after-milliseconds mymaster 5000"
            echo "sentinel failover-timeout mymaster 60000"
            echo "sentinel parallel-syncs mymaster 1"
        } >"$conf.new"
        mv "$conf.new" "$conf"
    fi
    start redis-server "$conf" --sentinel
    ;;
*)
    echo "usage: $0 server|sentinel" >&2
    exit 2
    ;;
esac
