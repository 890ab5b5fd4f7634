#!/usr/bin/env bash
# The long mode of the fuzz targets (issue #21 §3): every property test of an input parser, with
# 100,000 cases each unless SWITCHBOARD_FUZZ_CASES says otherwise. The suite (scripts/test.sh)
# runs the same targets with 256 cases each.
#
#   scripts/fuzz.sh                              # all targets, 100,000 cases each
#   SWITCHBOARD_FUZZ_CASES=10000 scripts/fuzz.sh # fewer
#   scripts/fuzz.sh email                        # targets whose test name contains "email"
#   SWITCHBOARD_FUZZ_SEED=123 scripts/fuzz.sh    # replay a run (the seed is in its summary)
#
# Prints one line per target (cases, seconds, slowest case, seed) and writes them, with the
# machine and the commit, to results/<date>-fuzz/summary.md (FUZZ_OUT overrides the folder); the
# whole test output goes to log.txt beside it. Exits non-zero when a target failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

export SWITCHBOARD_FUZZ_CASES=${SWITCHBOARD_FUZZ_CASES:-100000}
out=${FUZZ_OUT:-results/$(date -u +%F)-fuzz}
mkdir -p "$out"
log=$out/log.txt
filter=${1:-}

# Model targets (crate switchboard-model) and daemon targets (tests/it/fuzz, some against a real
# daemon on Redis), regression tests included.
model_expr='test(/^fuzz_tests::/)'
daemon_expr='test(/^fuzz::/)'
if [[ -n $filter ]]; then
    model_expr="$model_expr & test(/$filter/)"
    daemon_expr="$daemon_expr & test(/$filter/)"
fi

started_at=$(date -u +'%F %H:%M UTC')
commit=$(git rev-parse --short HEAD)
dirty=$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes in the tree)')
echo "==> building the test binaries"
cargo nextest run -p switchboard-model --lib --no-run
cargo nextest run -p switchboard --test it --no-run

started=$(date +%s)
status=0
: >"$log"
run() {
    # Output of passing tests too: each target prints its "fuzz <target>: <n> cases ..." line.
    set +e
    cargo nextest run --no-fail-fast --no-tests warn --success-output immediate --failure-output immediate "$@" 2>&1 |
        tee -a "$log" |
        grep --line-buffered -E '^\s*fuzz [a-z_.]+: [0-9]+ cases|^\s+(PASS|FAIL|SIGABRT|SIGSEGV|TIMEOUT) '
    local rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc -ne 0 ]]; then
        status=1
    fi
}
echo "==> ${SWITCHBOARD_FUZZ_CASES} cases per target"
run -p switchboard --test it -E "$daemon_expr"
run -p switchboard-model --lib -E "$model_expr"
elapsed=$(($(date +%s) - started))

# One table row per target line.
rows=$(grep -hoE 'fuzz [a-z_.]+: [0-9]+ cases in [0-9.]+ s \(slowest [0-9.]+ ms\), seed [0-9]+: [A-Za-z]+' "$log" |
    sed -E 's/^fuzz ([a-z_.]+): ([0-9]+) cases in ([0-9.]+) s \(slowest ([0-9.]+) ms\), seed ([0-9]+): ([A-Za-z]+)$/| `\1` | \2 | \3 | \4 | \5 | \6 |/' |
    sort)
targets=$(printf '%s\n' "$rows" | grep -c '^|' || true)
failed=$(printf '%s\n' "$rows" | grep -c 'FAILED |$' || true)
regressions=$(grep -cE '^\s+PASS .*::regression_' "$log" || true)
regressions_failed=$(grep -cE '^\s+(FAIL|SIGABRT|SIGSEGV) .*::regression_' "$log" || true)

{
    echo "# Fuzz run started ${started_at}, ended $(date -u +'%H:%M UTC')"
    echo
    echo "- Commit: \`${commit}\` when the run started${dirty}"
    echo "- Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(rustc --version)"
    echo "- Build: the test profile (debug, overflow checks on), as the suite runs it"
    echo "- Cases asked per target: ${SWITCHBOARD_FUZZ_CASES}; targets: ${targets}, failed: ${failed}"
    echo "- Named regression tests: ${regressions} passed, ${regressions_failed} failed"
    echo "- Wall time: ${elapsed} s (two targets at a time)"
    echo
    echo "| target | cases run | seconds | slowest case (ms) | seed | result |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    printf '%s\n' "$rows"
    echo
    echo "A target's cases include the shrinking steps after a failure. Replay one run of a target with"
    echo "\`SWITCHBOARD_FUZZ_SEED=<seed> SWITCHBOARD_FUZZ_CASES=<cases> scripts/fuzz.sh <target's test name>\`."
} >"$out/summary.md"

echo "==> ${targets} targets, ${failed} failed, ${elapsed} s; summary in $out/summary.md"
if [[ $failed -ne 0 || $regressions_failed -ne 0 ]]; then
    status=1
fi
exit $status
