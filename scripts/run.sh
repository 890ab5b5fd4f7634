#!/usr/bin/env bash
# Runs the daemon from this checkout: `scripts/run.sh [--config FILE] [other serve options]`.
# Without a reachable Redis it starts a local one whose data stays in .run/redis between runs.
# It checks $SWITCHBOARD_REDIS_URL or the default redis://127.0.0.1:6379; if your config file
# names another Redis, set SWITCHBOARD_REDIS_URL too.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup-debian.sh
if [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

url=${SWITCHBOARD_REDIS_URL:-redis://127.0.0.1:6379}

redis_ping() {
    local out
    case $url in
        unix://*)
            local sock=${url#unix://}
            out=$(redis-cli -s "${sock%%\?*}" ping 2>/dev/null) || return 1
            ;;
        *) out=$(redis-cli --no-auth-warning -u "$url" ping 2>/dev/null) || return 1 ;;
    esac
    [[ $out == PONG ]]
}

# Never echo the URL itself: it may carry a password.
if redis_ping; then
    echo "run: Redis answers"
else
    authority=${url#*://}
    authority=${authority%%/*}
    hostport=${authority##*@}
    case $hostport in
        \[*\]:*) host=${hostport%:*} port=${hostport##*:} ;;
        \[*\]) host=$hostport port=6379 ;;
        *:*) host=${hostport%:*} port=${hostport##*:} ;;
        *) host=$hostport port=6379 ;;
    esac
    case $url in
        redis://*) ;;
        *) host=not-local ;;
    esac
    case $host in
        127.0.0.1 | localhost | \[::1\]) ;;
        *)
            echo "run: nothing answers at the Redis URL and it is not a local one this script can start" >&2
            exit 1
            ;;
    esac
    dir=$repo/.run/redis
    mkdir -p "$dir"
    echo "run: starting redis-server on 127.0.0.1:$port (data in $dir; stop it with: redis-cli -p $port shutdown)"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 50); do
        redis_ping && break
        sleep 0.2
    done
    if ! redis_ping; then
        echo "run: redis-server did not answer; see $dir/redis.log" >&2
        exit 1
    fi
fi

# Nothing is anonymous, so the local operator gets an admin key: made once, kept in a file only
# its owner can read, where `switchboard ctl` looks for it. An admin key given in the environment wins.
key_file=${SWITCHBOARD_API_KEY_FILE:-${XDG_CONFIG_HOME:-$HOME/.config}/switchboard/admin.key}
if [[ -z ${SWITCHBOARD_ADMIN_KEY:-} ]]; then
    if [[ ! -s $key_file ]]; then
        mkdir -p "$(dirname "$key_file")"
        (
            umask 077
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/sbc_/' >"$key_file"
        )
        echo "run: created an admin key in $key_file (switchboard ctl reads it from there)"
    else
        echo "run: using the admin key in $key_file"
    fi
    SWITCHBOARD_ADMIN_KEY=$(<"$key_file")
    export SWITCHBOARD_ADMIN_KEY
fi

exec cargo run --release -- serve "$@"
