#!/usr/bin/env bash
# The long fault run (issue #21): the suite's two fault tests (tests/it/chaos/), run long.
#  - standalone: chats and calls into three `switchboard serve` processes on one Redis (AOF), the
#    log delivered to a `switchboard crm` process; instances killed (-9) and frozen (SIGSTOP),
#    Redis killed with appendfsync always and everysec and frozen, the CRM down, then overlapping.
#  - sentinel: Redis behind Sentinel, with email (Dovecot, SMTP) and SMS (Kannel) as well; a
#    failover, Dovecot, the SMTP server and Kannel restarted, the CRM down, then overlapping.
# Each runs SECS (default 300) with ROUNDS rounds of faults (default 2) and the CRM down
# CRM_DOWN seconds an outage (default 120); the report goes to results/<date>-chaos-wide/.
#   scripts/chaos.sh [SECS [ROUNDS [CRM_DOWN]]]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
rounds="${2:-2}"
crm_down="${3:-120}"
out="results/$(date +%Y-%m-%d)-chaos-wide"
mkdir -p "$out/parts"
commit="$(git rev-parse --short HEAD)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
SWITCHBOARD_CHAOS_SECS="$secs" SWITCHBOARD_CHAOS_ROUNDS="$rounds" SWITCHBOARD_CHAOS_CRM_DOWN_SECS="$crm_down" \
    SWITCHBOARD_CHAOS_REPORT_DIR="$out/parts" \
    cargo nextest run -p switchboard --test it -E 'test(/^chaos::/)' --no-fail-fast --no-capture || status=$?
{
    echo "# Fault run, wide: ${secs} s per run, ${rounds} rounds of faults, CRM down ${crm_down} s"
    echo
    echo "Commit ${commit}, started ${started}, $(nproc) cores; \`scripts/chaos.sh ${secs} ${rounds} ${crm_down}\`;"
    echo "nextest exit status ${status}."
    echo
    cat "$out"/parts/*.md
} > "$out/report.md"
echo "report: $out/report.md"
exit "$status"
