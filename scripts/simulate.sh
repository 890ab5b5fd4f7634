#!/usr/bin/env bash
# The simulator's figures (issue #22): the validation tables (10 agents, ARRIVALS contacts a point:
# Erlang C at 70, 85 and 95 % load; Erlang A, mean patience 120 s, at 85, 95 and 110 %) and a day
# of a 500-agent center (five queues, eight hours, ~44,000 calls) through today's config and a
# proposed one, timed, with its chart. Results go to results/<date>-simulate/.
#   scripts/simulate.sh [ARRIVALS]
set -euo pipefail
cd "$(dirname "$0")/.."
arrivals="${1:-20000}"
out="results/$(date +%Y-%m-%d)-simulate"
mkdir -p "$out"
cargo build --release -p switchboard
sb=target/release/switchboard
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 500 agents: 100 per skill group (levels 3 to 9), each with a second group's skill at level 2; one
# call at a time.
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
groups = ["billing", "tech", "sales", "retention", "general"]
agents = []
for i in range(500):
    g = groups[i % 5]
    second = groups[(i + 1) % 5]
    level = 3 + (i // 5) % 7
    agents.append(f'[[agents]]\nid = "a{i:03}"\ntoken = "t{i}"\n'
                  f'skills = {{ {g} = {level}, {second} = 2 }}\n'
                  'capacity = { voice = 1, chat = 0, sms = 0, email = 0 }\n')
def queues(relaxed):
    out = []
    for g in groups:
        q = f'[[queues]]\nname = "{g}"\nchannels = ["voice"]\nstrategy = "most_skilled"\n' \
            f'requirements = [{{ skill = "{g}", min_level = 5 }}]\nservice_level_secs = 20\n'
        if relaxed:
            q += f'escalation = [{{ after_secs = 20, lower_level = {{ skill = "{g}", min_level = 2 }} }}]\n'
        out.append(q)
    return "\n".join(out)
open(f"{d}/today.toml", "w").write("\n".join(agents) + queues(False))
open(f"{d}/proposed.toml", "w").write("\n".join(agents) + queues(True))
streams = []
# Voice: about 1.1 times what the level-5 agents of each group can take (71 of 100), well within
# what every agent with the skill at all can (200 a queue, counting second skills).
for g in groups:
    streams.append(f'[[arrivals]]\nqueue = "{g}"\nchannel = "voice"\nper_hour = 1100\nhandle_secs = 240\n'
                   'handle = "lognormal"\nhandle_sd_secs = 160\npatience_secs = 150\n')
open(f"{d}/day.toml", "w").write('seed = 2026\nhours = 8\naccept_delay_secs = 2\nwarm_up_secs = 900\n\n' + "\n".join(streams))
PY

started=$(date +%s)
"$sb" simulate --config "$work/today.toml" --proposed "$work/proposed.toml" --scenario "$work/day.toml" \
  --out "$out/day" 2> "$out/day-timing.txt"
day_secs=$(( $(date +%s) - started ))
"$sb" simulate --validate --arrivals "$arrivals" --out "$out/validation" > /dev/null
{
  echo "# Simulator figures ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores)"
  echo
  echo "## Validation (10 agents, mean handle 180 s, $arrivals contacts a point)"
  echo
  sed 's/^# /### /' "$out/validation/validation.md"
  echo
  echo "## A day of a 500-agent center (8 h, 5 voice queues needing level 5), today vs. level 2 after 20 s"
  echo
  echo "Wall time for both runs: ${day_secs} s ($(tr '\n' ';' < "$out/day-timing.txt"))"
  echo
  tail -n +3 "$out/day/report.md" | sed 's#(chart.svg)#(day/chart.svg)#'
} > "$out/report.md"
cat "$out/report.md"
