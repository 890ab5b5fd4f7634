#!/usr/bin/env bash
# Voice routing end to end, without Switchboard's Rust side: Kamailio with
# deploy/kamailio/kamailio.cfg, the Python stand-in for Switchboard
# (scripts/kamailio-bridge-prototype.py) on Kamailio's evapi socket, and SIPp callers and agents'
# phones (tests/it/fixtures/sipp/). Everything listens on free loopback ports and writes into a
# temporary directory; every process is started here and stopped by its own PID on exit.
#
#   scripts/kamailio-demo.sh           runs the scenarios, prints what happened; exit 0 if all passed
#   KEEP=1 scripts/kamailio-demo.sh    keeps the temporary directory (logs, SIPp traces)
#   BURST=50 scripts/kamailio-demo.sh  calls in the timing run at the end (default 20)
#
# Needs kamailio, kamailio-extra-modules (evapi, jansson), sip-tester (sipp) and python3:
# scripts/setup-debian.sh installs them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cfg=$root/deploy/kamailio/kamailio.cfg
scen=$root/tests/it/fixtures/sipp
bridge_py=$root/scripts/kamailio-bridge-prototype.py
burst=${BURST:-20}

for cmd in kamailio sipp python3; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "kamailio-demo: $cmd not found (scripts/setup-debian.sh installs it)" >&2
        exit 2
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kamailio-demo.XXXXXX")
declare -a started=()
kam_pid=
bridge_pid=

stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local pid
    for pid in "${started[@]}"; do
        stop_pid "$pid"
    done
    if [[ -n ${KEEP:-} ]]; then
        echo "kamailio-demo: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N ports free on 127.0.0.1 for both UDP and TCP.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
ports, held = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close()
        continue
    held += [t, u]
    ports.append(p)
print(" ".join(map(str, ports)))
EOF
}

read -r sip_port evapi_port vm_port a_port b_port c1 c2 c3 c4 c5 c6 <<<"$(free_ports 11)"

# The demo's timers: short rings and waits so that it runs in about a minute.
ring_ms=3000
wait_ms=8000

# ---------------------------------------------------------------------------------------------
# Kamailio. Defines given with -A win over the #!trydef defaults in the configuration.
mkdir -p "$work/run"
kamailio -f "$cfg" -Y "$work/run" -E -DD \
    -A SIP_PORT="$sip_port" \
    -A "EVAPI_BIND=\"127.0.0.1:$evapi_port\"" \
    -A "FALLBACK_URI=\"sip:voicemail@127.0.0.1:$vm_port\"" \
    -A RING_TIMEOUT_MS=$ring_ms -A WAIT_MAX_MS=$wait_ms -A CHILDREN=2 \
    >"$work/kamailio.log" 2>&1 &
kam_pid=$!
started+=("$kam_pid")

# Ready when it answers an OPTIONS to itself with 200 (the configuration does that).
if ! python3 - "$sip_port" <<'EOF'; then
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.1)
me = s.getsockname()[1]
deadline = time.time() + 15
n = 0
while time.time() < deadline:
    n += 1
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ready-{n}\r\n"
           f"From: <sip:probe@127.0.0.1>;tag=ready\r\nTo: <sip:127.0.0.1:{port}>\r\n"
           f"Call-ID: ready-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
           f"Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", port))
    try:
        if s.recv(65536).startswith(b"SIP/2.0 200"):
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
EOF
    echo "kamailio-demo: Kamailio did not become ready; its log:" >&2
    tail -30 "$work/kamailio.log" >&2
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# The stand-in for Switchboard. sales goes to voicemail, service is closed, 4444 is never
# answered (Kamailio's wait limit takes over); everything else rings agentA, then agentB.
: >"$work/bridge.jsonl"
start_bridge_n() { # $1: pongs seen so far; rest: bridge options
    local seen=$1
    shift
    python3 "$bridge_py" --evapi "127.0.0.1:$evapi_port" \
        --action sales=default --action service=reject:480 --action 4444=ignore \
        --ping 0.5 "$@" agentA agentB >>"$work/bridge.jsonl" 2>>"$work/bridge.err" &
    bridge_pid=$!
    started+=("$bridge_pid")
    for _ in $(seq 100); do
        if [[ $(grep -c '"event":"pong"' "$work/bridge.jsonl" || true) -gt $seen ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "kamailio-demo: the bridge did not connect" >&2
    cat "$work/bridge.err" >&2
    exit 1
}
start_bridge_n 0

# ---------------------------------------------------------------------------------------------
# SIPp helpers. Each run writes <dir>/<name>.log (the scenario's "outcome" lines),
# <name>.msg (every message with its time) and <name>.err into the scenario's directory.
sipp_files() { # dir name
    echo -trace_logs -log_file "$1/$2.log" -trace_msg -message_file "$1/$2.msg" \
        -trace_err -error_file "$1/$2.err"
}

register() { # agent port [expires]
    mkdir -p "$work/reg"
    # shellcheck disable=SC2046
    sipp "127.0.0.1:$sip_port" -sf "$scen/register.xml" -s "$1" -i 127.0.0.1 -p "$2" \
        -m 1 -nostdin -timeout 10 -set expires "${3:-3600}" $(sipp_files "$work/reg" "$1-$RANDOM") \
        >/dev/null 2>&1
}

# A phone answering calls in the background: phone dir name agent port calls [-set ...]
# Its PID is left in $last (not echoed: a $(...) subshell would not be its parent for wait).
phone() {
    local dir=$1 name=$2 agent=$3 port=$4 calls=$5
    shift 5
    # shellcheck disable=SC2046
    sipp -sf "$scen/agent.xml" -s "$agent" -i 127.0.0.1 -p "$port" -m "$calls" -nostdin \
        $(sipp_files "$dir" "$name") "$@" >"$dir/$name.out" 2>&1 &
    last=$!
    started+=("$last")
}

# A caller in the background: dir name number port scenario-file [-set ...]; PID in $last.
caller() {
    local dir=$1 name=$2 number=$3 port=$4 file=$5
    shift 5
    # shellcheck disable=SC2046
    sipp "127.0.0.1:$sip_port" -sf "$scen/$file" -s "$number" -i 127.0.0.1 -p "$port" \
        -m 1 -nostdin $(sipp_files "$dir" "$name") "$@" >"$dir/$name.out" 2>&1 &
    last=$!
    started+=("$last")
}

# Waits for SIPp processes; their exit codes go to <dir>/rc (name rc per line).
await() { # dir name:pid...
    local dir=$1 item name pid rc
    shift
    for item in "$@"; do
        name=${item%%:*}
        pid=${item#*:}
        rc=0
        for _ in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            stop_pid "$pid"
            rc=124
        else
            wait "$pid" || rc=$?
        fi
        echo "$name $rc" >>"$dir/rc"
    done
}

cat >"$work/check.py" <<'EOF'
"""Prints what one scenario's calls went through and checks it against what was expected.

check.py BRIDGE_JSONL DIR TITLE [CALLER=EXPECTED ...]
EXPECTED: space-separated steps, in order, of the call whose caller log is DIR/CALLER.log:
  route  >ring:AGENT  >default  >reject:CODE  ringing:AGENT  ring_failed:AGENT:STATUS
  answered:AGENT|default  released:AGENT|default:BY  abandoned:WHILE  defaulted:REASON  failed:STATUS
  ignored:REASON
Also checks DIR/rc (every SIPp process exit code 0).
"""
import json, os, re, sys

bridge, d, title = sys.argv[1], sys.argv[2], sys.argv[3]
lines = [json.loads(l) for l in open(bridge) if l.strip()]

def call_id(name):
    for l in open(os.path.join(d, name + ".log"), errors="replace"):
        m = re.search(r"(\S+@127\.0\.0\.1)\s*$", l.strip())
        if m:
            return m.group(1)
    return None

def steps(cid):
    out = []
    for l in lines:
        m = l.get("msg") or {}
        # Snapshots (sent to every client whenever any client connects) are states, not steps.
        if m.get("call_id") != cid or m.get("snapshot"):
            continue
        if l["dir"] == "out":
            a = m["action"]
            s = ">" + a + (":" + m["agent"] if a == "ring" else ":" + str(m["code"]) if a == "reject" else "")
        elif l["dir"] == "in":
            e = m["event"]
            if e == "route":
                s = "route"
            elif e in ("ringing",):
                s = e + ":" + m.get("agent", "")
            elif e == "ring_failed":
                s = "ring_failed:%s:%s" % (m.get("agent"), m.get("status"))
            elif e == "answered":
                s = "answered:" + m.get("agent", m.get("target", ""))
            elif e == "released":
                s = "released:%s:%s" % (m.get("agent", m.get("target", "")), m.get("by"))
            elif e == "abandoned":
                s = "abandoned:" + m.get("while", "")
            elif e == "defaulted":
                s = "defaulted:" + m.get("reason", "")
            elif e == "failed":
                s = "failed:%s" % m.get("status")
            elif e == "ignored":
                s = "ignored:" + m.get("reason", "")
            else:
                s = e
        else:
            continue
        out.append((l["t"], s, m))
    return out

ok = True
print(title)
for spec in sys.argv[4:]:
    name, expected = spec.split("=", 1)
    cid = call_id(name)
    got = steps(cid) if cid else []
    seq = [s for _, s, _ in got]
    t0 = got[0][0] if got else 0
    shown = "  ".join("%s(+%.2fs)" % (s, t - t0) if i else s for i, (t, s, _) in enumerate(got))
    good = seq == expected.split()
    ok &= good
    print("  %-9s %s" % (name, shown or "(no events)"))
    if not good:
        print("  %-9s expected: %s" % ("", expected))
    outcome = [re.sub(r"\s+\S+@127\.0\.0\.1\s*$", "", l.strip())[len("outcome "):]
               for l in open(os.path.join(d, name + ".log"), errors="replace")
               if l.startswith("outcome")] if cid else []
    if outcome:
        print("  %-9s caller: %s" % ("", "; ".join(outcome)))
for l in open(os.path.join(d, "rc")):
    n, rc = l.split()
    if rc != "0":
        ok = False
        print("  SIPp %s exited %s (see %s/%s.err)" % (n, rc, d, n))
print("  -> PASS" if ok else "  -> FAIL")
sys.exit(0 if ok else 1)
EOF

failures=0
scenarios=0
check() { # dir title caller=expected...
    scenarios=$((scenarios + 1))
    if ! python3 "$work/check.py" "$work/bridge.jsonl" "$@"; then
        failures=$((failures + 1))
    fi
    echo
}

new_dir() {
    local d="$work/$1"
    mkdir -p "$d"
    : >"$d/rc"
    echo "$d"
}

# ---------------------------------------------------------------------------------------------
echo "Kamailio on udp:127.0.0.1:$sip_port (pid $kam_pid), evapi 127.0.0.1:$evapi_port;" \
    "ring timeout ${ring_ms} ms, wait limit ${wait_ms} ms; work dir $work"
register agentA "$a_port"
register agentB "$b_port"
sleep 0.3
echo "phones: $(python3 -c '
import json,sys
st={}
for l in open(sys.argv[1]):
    m=json.loads(l).get("msg") or {}
    if m.get("event")=="phone": st[m["agent"]]=m["state"]
print(", ".join("%s %s" % kv for kv in sorted(st.items())))' "$work/bridge.jsonl")"
echo

# 1. A call rings agent A, who answers, then hangs up.
d=$(new_dir s1)
phone "$d" agentA agentA "$a_port" 1 -set answer_ms 500 -set hold_ms 1000
pa=$last
sleep 0.2
caller "$d" caller support "$c1" caller.xml
pc=$last
await "$d" "caller:$pc" "agentA:$pa"
check "$d" "1. agent A answers, then hangs up" \
    "caller=route >ring:agentA ringing:agentA answered:agentA released:agentA:agent"

# 2. Agent A lets it ring: Kamailio's ring timeout, ring_failed 408, Switchboard rings B.
d=$(new_dir s2)
phone "$d" agentA agentA "$a_port" 1 -set reply none
pa=$last
phone "$d" agentB agentB "$b_port" 1 -set answer_ms 500 -set hold_ms 5000
pb=$last
sleep 0.2
caller "$d" caller support "$c1" caller.xml -set hangup caller -set hold_ms 1000
pc=$last
await "$d" "caller:$pc" "agentA:$pa" "agentB:$pb"
check "$d" "2. agent A never answers: ring_failed 408, then agent B" \
    "caller=route >ring:agentA ringing:agentA ring_failed:agentA:408 >ring:agentB ringing:agentB answered:agentB released:agentB:caller"

# 3. Both agents talking: the third caller waits until agent A's call ends, then rings A.
d=$(new_dir s3)
phone "$d" agentA agentA "$a_port" 2 -set answer_ms 300 -set hold_ms 3000
pa=$last
phone "$d" agentB agentB "$b_port" 1 -set answer_ms 300 -set hold_ms 6000
pb=$last
sleep 0.2
caller "$d" first support "$c1" caller.xml
p1=$last
sleep 0.5
caller "$d" second support "$c2" caller.xml
p2=$last
sleep 0.5
caller "$d" third support "$c3" caller.xml
p3=$last
await "$d" "first:$p1" "second:$p2" "third:$p3" "agentA:$pa" "agentB:$pb"
check "$d" "3. nobody free: the third call waits, then rings agent A when A's call ends" \
    "first=route >ring:agentA ringing:agentA answered:agentA released:agentA:agent" \
    "second=route >ring:agentB ringing:agentB answered:agentB released:agentB:agent" \
    "third=route >ring:agentA ringing:agentA answered:agentA released:agentA:agent"

# 4. Both agents talking: a caller gives up while waiting.
d=$(new_dir s4)
phone "$d" agentA agentA "$a_port" 1 -set answer_ms 200 -set hold_ms 3500
pa=$last
phone "$d" agentB agentB "$b_port" 1 -set answer_ms 200 -set hold_ms 3500
pb=$last
sleep 0.2
caller "$d" first support "$c1" caller.xml
p1=$last
sleep 0.3
caller "$d" second support "$c2" caller.xml
p2=$last
sleep 0.5
caller "$d" quitter support "$c3" caller-cancel.xml -set cancel_ms 1500
p3=$last
await "$d" "first:$p1" "second:$p2" "quitter:$p3" "agentA:$pa" "agentB:$pb"
check "$d" "4. the caller hangs up while waiting: abandoned" \
    "first=route >ring:agentA ringing:agentA answered:agentA released:agentA:agent" \
    "second=route >ring:agentB ringing:agentB answered:agentB released:agentB:agent" \
    "quitter=route abandoned:waiting"

# 5. Agent A's phone is busy (486): ring_failed 486 (and phone busy), then agent B.
d=$(new_dir s5)
phone "$d" agentA agentA "$a_port" 1 -set reply 486 -set answer_ms 200
pa=$last
phone "$d" agentB agentB "$b_port" 1 -set answer_ms 300 -set hold_ms 1000
pb=$last
sleep 0.2
caller "$d" caller support "$c1" caller.xml
pc=$last
await "$d" "caller:$pc" "agentA:$pa" "agentB:$pb"
check "$d" "5. agent A is busy: ring_failed 486, then agent B" \
    "caller=route >ring:agentA ring_failed:agentA:486 >ring:agentB ringing:agentB answered:agentB released:agentB:agent"

# 6. The caller hangs up while agent A's phone rings: abandoned, and A's phone stops (CANCEL).
d=$(new_dir s6)
phone "$d" agentA agentA "$a_port" 1 -set reply none
pa=$last
sleep 0.2
caller "$d" quitter support "$c1" caller-cancel.xml -set cancel_ms 1500
pc=$last
await "$d" "quitter:$pc" "agentA:$pa"
check "$d" "6. the caller hangs up while agent A's phone rings" \
    "quitter=route >ring:agentA ringing:agentA abandoned:ringing"
grep -h '^outcome' "$d/agentA.log" | sed -E 's/ [^ ]+@127\.0\.0\.1$//; s/^outcome /            agent A: /'
echo

# 7. Switchboard's other answers: voicemail (default), reject; and no answer within the wait limit.
d=$(new_dir s7)
phone "$d" voicemail voicemail "$vm_port" 2 -set answer_ms 200 -set hold_ms 800
pv=$last
sleep 0.2
caller "$d" sales sales "$c1" caller.xml
p1=$last
caller "$d" closed service "$c2" caller.xml -set expect failure
p2=$last
caller "$d" unanswered 4444 "$c3" caller.xml
p3=$last
await "$d" "sales:$p1" "closed:$p2" "unanswered:$p3" "voicemail:$pv"
check "$d" "7. default (voicemail), reject 480, and Switchboard silent past the wait limit" \
    "sales=route >default answered:default released:default:agent" \
    "closed=route >reject:480 failed:480" \
    "unanswered=route defaulted:wait_timeout answered:default released:default:agent"

# 8. Switchboard restarts and answers everything twice; an answer for a call that does not exist.
d=$(new_dir s8)
stop_pid "$bridge_pid"
pongs=$(grep -c '"event":"pong"' "$work/bridge.jsonl" || true)
start_bridge_n "$pongs" --answer-twice
phone "$d" agentA agentA "$a_port" 1 -set answer_ms 300 -set hold_ms 500
pa=$last
sleep 0.2
caller "$d" caller support "$c1" caller.xml
pc=$last
python3 - "$evapi_port" >"$d/raw.jsonl" <<'EOF'
import json, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
b = json.dumps({"action": "ring", "call_id": "no-such-call", "tindex": 1, "tlabel": 1,
                "attempt": 1, "agent": "agentA"}).encode()
s.sendall(str(len(b)).encode() + b":" + b + b",")
# Read for one second (pongs to the bridge's pings keep coming: no idle timeout).
end = time.time() + 1.0
buf = b""
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        d = s.recv(65536)
    except socket.timeout:
        break
    if not d:
        break
    buf += d
while b":" in buf:
    c = buf.index(b":")
    n = int(buf[:c])
    if len(buf) < c + 2 + n:
        break
    print(buf[c + 1:c + 1 + n].decode())
    buf = buf[c + 2 + n:]
EOF
await "$d" "caller:$pc" "agentA:$pa"
check "$d" "8. a restarted Switchboard answering twice: the second answer is ignored" \
    "caller=route >ring:agentA >ring:agentA ignored:not_waiting ringing:agentA answered:agentA released:agentA:agent"
python3 - "$work/bridge.jsonl" "$d/raw.jsonl" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
start = max(i for i, l in enumerate(lines) if l.get("what") == "connected")
snap = []
for l in lines[start:]:
    m = l.get("msg") or {}
    if m.get("event") == "snapshot_end":
        break
    if m.get("snapshot"):
        snap.append("%s %s" % (m.get("agent") or m.get("call_id"), m["state"]))
print("            the restarted bridge's snapshot: " + ", ".join(snap) + ", snapshot_end")
for l in open(sys.argv[2]):
    m = json.loads(l)
    if m.get("call_id") == "no-such-call":
        print("            an answer for an unknown call: %s %s (state %s)" % (m["event"], m["reason"], m["state"]))
EOF
echo

# ---------------------------------------------------------------------------------------------
# Timing: $burst calls one after the other; the agent answers at once (a bridge answering once).
d=$(new_dir timing)
stop_pid "$bridge_pid"
pongs=$(grep -c '"event":"pong"' "$work/bridge.jsonl" || true)
start_bridge_n "$pongs"
phone "$d" agentA agentA "$a_port" "$burst" -set answer_ms 0 -set hold_ms 100
pa=$last
phone "$d" agentB agentB "$b_port" "$burst" -set answer_ms 0 -set hold_ms 100
pb=$last
sleep 0.2
# shellcheck disable=SC2046
timeout 120 sipp "127.0.0.1:$sip_port" -sf "$scen/caller.xml" -s support -i 127.0.0.1 -p "$c6" \
    -m "$burst" -l 1 -r 10 -nostdin $(sipp_files "$d" caller) >"$d/caller.out" 2>&1 || echo "caller $?" >>"$d/rc"
stop_pid "$pa"
stop_pid "$pb"

rc=0
python3 - "$work" "$burst" <<'EOF' || rc=$?
import datetime, glob, json, os, re, statistics, sys

work, burst = sys.argv[1], int(sys.argv[2])

def messages(path):
    """(time, direction, first line, call-id) of every message in a SIPp -trace_msg file."""
    out = []
    if not os.path.exists(path):
        return out
    text = open(path, errors="replace").read()
    for block in re.split(r"\n-{40,} ", "\n" + text)[1:]:
        stamp, _, rest = block.partition("\n")
        try:
            t = datetime.datetime.strptime(stamp.strip()[:26], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        direction = "sent" if "message sent" in rest.split("\n", 1)[0] else "recv"
        body = rest.split("\n", 1)[1].lstrip("\n") if "\n" in rest else ""
        first = body.split("\n", 1)[0].strip()
        m = re.search(r"^Call-ID:\s*(\S+)", body, re.M | re.I)
        out.append((t, direction, first, m.group(1) if m else None))
    return out

def first(msgs, cid, direction, prefix):
    for t, dr, line, c in msgs:
        if c == cid and dr == direction and line.startswith(prefix):
            return t
    return None

def fmt(xs, unit=1000.0):
    xs = sorted(x * unit for x in xs if x is not None)
    if not xs:
        return "n/a"
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return "median %.2f ms, p90 %.2f ms, max %.2f ms (n=%d)" % (statistics.median(xs), p(0.9), xs[-1], len(xs))

d = os.path.join(work, "timing")
caller = messages(os.path.join(d, "caller.msg"))
agents = messages(os.path.join(d, "agentA.msg")) + messages(os.path.join(d, "agentB.msg"))
bridge = [json.loads(l) for l in open(os.path.join(work, "bridge.jsonl"))]
cids = sorted({c for _, dr, line, c in caller if line.startswith("INVITE")})
to100, to_agent, to180c, to200 = [], [], [], []
for cid in cids:
    inv = first(caller, cid, "sent", "INVITE")
    for lst, t in ((to100, first(caller, cid, "recv", "SIP/2.0 100")),
                   (to_agent, first(agents, cid, "recv", "INVITE")),
                   (to180c, first(caller, cid, "recv", "SIP/2.0 180")),
                   (to200, first(caller, cid, "recv", "SIP/2.0 200"))):
        lst.append(t - inv if t and inv else None)
# evapi: Kamailio's "at" of each event to the bridge reading it; ping to pong.
one_way = [l["t"] - l["msg"]["at"] for l in bridge if l["dir"] == "in" and "at" in l["msg"]]
# Ping ids start again with each bridge run: pair each pong with the latest ping before it.
rtt, pings = [], {}
for l in bridge:
    m = l.get("msg") or {}
    if l["dir"] == "out" and m.get("action") == "ping":
        pings[m["id"]] = l["t"]
    elif l["dir"] == "in" and m.get("event") == "pong" and m.get("ping_id") in pings:
        rtt.append(l["t"] - pings.pop(m["ping_id"]))
# route event emitted -> ring command -> INVITE at the agent's phone (the decision's round trip).
route_at = {l["msg"]["call_id"]: l["msg"]["at"] for l in bridge
            if l["dir"] == "in" and l["msg"].get("event") == "route"}
decide = [first(agents, c, "recv", "INVITE") - route_at[c] for c in cids
          if c in route_at and first(agents, c, "recv", "INVITE")]

# Failover, from scenarios 2 and 5: the phone's "no" to the next phone's INVITE.
def failover(sdir, a_first, a_line, a_dir):
    a = messages(os.path.join(work, sdir, "agentA.msg"))
    b = messages(os.path.join(work, sdir, "agentB.msg"))
    for t, dr, line, cid in a:
        if dr == a_dir and line.startswith(a_line):
            tb = first(b, cid, "recv", "INVITE")
            return (tb - t) if tb else None
    return None
f408 = failover("s2", "agentA", "CANCEL", "recv")
f486 = failover("s5", "agentA", "SIP/2.0 486", "sent")
s2a = messages(os.path.join(work, "s2", "agentA.msg"))
ring_started = [t for t, dr, line, _ in s2a if dr == "recv" and line.startswith("INVITE")]
ring_ended = [t for t, dr, line, _ in s2a if dr == "recv" and line.startswith("CANCEL")]

# Scenario 3: how long the third caller waited before its phone rang.
s3 = messages(os.path.join(work, "s3", "third.msg"))
s3cid = next((c for _, dr, line, c in s3 if line.startswith("INVITE")), None)
waited = None
if s3cid:
    waited = (first(s3, s3cid, "recv", "SIP/2.0 180") or 0) - (first(s3, s3cid, "sent", "INVITE") or 0)

print("Timing (loopback, %d calls in a row, the agent answers at once)" % len(cids))
print("  caller INVITE -> 100 Trying              " + fmt(to100))
print("  caller INVITE -> INVITE at agent's phone  " + fmt(to_agent))
print("  caller INVITE -> 180 at the caller       " + fmt(to180c))
print("  caller INVITE -> 200 at the caller       " + fmt(to200))
print("  route event -> INVITE at agent's phone   " + fmt(decide) + "  (evapi there and back + t_continue + relay)")
print("  Kamailio event -> read by the bridge     " + fmt(one_way))
print("  evapi ping -> pong                       " + fmt(rtt))
if ring_started and ring_ended:
    print("  ring timeout (RING_TIMEOUT_MS=3000)      %.0f ms from INVITE at A to Kamailio's CANCEL" % ((ring_ended[0] - ring_started[0]) * 1000))
print("  failover after the ring timeout          " + ("%.1f ms (A's CANCEL -> INVITE at B)" % (f408 * 1000) if f408 else "n/a"))
print("  failover after 486 Busy                  " + ("%.1f ms (A's 486 -> INVITE at B)" % (f486 * 1000) if f486 else "n/a"))
if waited:
    print("  scenario 3, third caller waited          %.2f s before its 180" % waited)
ok = len(cids) == burst and all(x is not None for x in to200)
print("  -> PASS" if ok else "  -> FAIL (%d of %d calls answered)" % (sum(x is not None for x in to200), burst))
sys.exit(0 if ok else 1)
EOF
scenarios=$((scenarios + 1))
[[ $rc -eq 0 ]] || failures=$((failures + 1))
if grep -q ' [1-9][0-9]*$' "$d/rc"; then
    failures=$((failures + 1))
fi

errors=$(grep -c ' ERROR: ' "$work/kamailio.log" || true)
echo
echo "Kamailio logged $errors ERROR line(s)."
if [[ $errors -gt 0 ]]; then
    grep ' ERROR: ' "$work/kamailio.log" | head -5 | cut -c1-200
fi
echo "$((scenarios - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
