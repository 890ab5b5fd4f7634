#!/usr/bin/env bash
# The long fault run (issue #21): traffic through three real `switchboard serve` processes on one
# Redis (AOF, appendfsync always) while an instance is killed and restarted, another frozen and
# continued, and Redis killed and restarted; then lost / doubled / over-capacity checked from
# outside. The suite runs the same test for 20 s; this runs it for SECS (default 600) and keeps the
# report in results/<date>-chaos/.
#   scripts/chaos.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
out="results/$(date +%Y-%m-%d)-chaos"
mkdir -p "$out"
SWITCHBOARD_CHAOS_SECS="$secs" SWITCHBOARD_CHAOS_REPORT="$out/report.md" \
    cargo nextest run -p switchboard --test it -E 'test(=chaos::faults_under_traffic_lose_nothing_double_nothing_and_never_overfill_an_agent)' \
    --no-capture
echo "report: $out/report.md"
