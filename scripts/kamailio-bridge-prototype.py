#!/usr/bin/env python3
"""A stand-in for Switchboard's Kamailio bridge, to try the protocol of deploy/kamailio/README.md.

It connects to Kamailio's evapi listener (netstring-framed JSON) and routes calls with a trivial
policy: the agents named on the command line, in that order; a new call rings the first agent whose
phone is registered and who is idle (preferring agents this call has not rung yet); with nobody free
the call waits; whenever an agent frees up (a call ends, a ring fails, a phone registers) the
longest-waiting call is routed again.

Every message received or sent is printed on stdout as one JSON line:
    {"t": <unix time>, "dir": "in"|"out", "msg": {...}}
plus {"t":..., "dir": "note", ...} lines for what the policy did. scripts/kamailio-demo.sh reads them.

Standard library only. Run:  kamailio-bridge-prototype.py --evapi 127.0.0.1:8448 agentA agentB
"""

import argparse
import asyncio
import json
import socket
import sys
import time
from collections import OrderedDict


def out(kind, **fields):
    line = {"t": round(time.time(), 6), "dir": kind}
    line.update(fields)
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Netstrings:
    """Incremental netstring decoder: feed bytes, get complete payloads."""

    def __init__(self, limit=1 << 20):
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data):
        self.buf += data
        frames = []
        while True:
            # Kamailio tolerates whitespace between frames; so do we.
            while self.buf[:1] in (b" ", b"\r", b"\n", b"\t"):
                del self.buf[:1]
            colon = self.buf.find(b":")
            if colon < 0:
                if len(self.buf) > 10:
                    raise ValueError("netstring length too long")
                return frames
            length = int(self.buf[:colon])
            if length > self.limit:
                raise ValueError("netstring too large")
            end = colon + 1 + length
            if len(self.buf) < end + 1:
                return frames
            if self.buf[end:end + 1] != b",":
                raise ValueError("netstring without trailing comma")
            frames.append(bytes(self.buf[colon + 1:end]))
            del self.buf[:end + 1]


def netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Bridge:
    def __init__(self, agents, ring_timeout=None, hold_all=False, answer_delay=0.0, quickack=True,
                 actions=None, answer_twice=False):
        self.quickack = quickack
        # dialled number -> "ring" (the default), "default", "default:<uri>", "reject:<code>",
        # "ignore" (never answer: Kamailio's wait limit takes over)
        self.actions = actions or {}
        self.answer_twice = answer_twice
        self.agent_order = list(agents)
        # agent -> {"phone": "registered"|"unregistered"|None, "call": call_id or None}
        self.agents = {a: {"phone": None, "call": None} for a in agents}
        # call_id -> {"q": last question, "state": "waiting"|"ringing"|"talking", "agent", "tried"}
        self.calls = OrderedDict()
        self.seen_ids = OrderedDict()
        self.ring_timeout = ring_timeout
        self.hold_all = hold_all
        self.answer_delay = answer_delay
        self.writer = None

    # --- transport -------------------------------------------------------------------------
    async def run(self, host, port, retry_for):
        deadline = time.monotonic() + retry_for
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bridge: cannot connect to evapi {host}:{port}: {e}")
                await asyncio.sleep(0.1)
        self.writer = writer
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out("note", what="connected", evapi=f"{host}:{port}")
        decoder = Netstrings()
        while True:
            # Kamailio's evapi socket has Nagle on: a second message written before the first was
            # acknowledged waits for our (delayed, ~40 ms) ACK. Acknowledge at once instead.
            if self.quickack and hasattr(socket, "TCP_QUICKACK"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            data = await reader.read(65536)
            if not data:
                out("note", what="disconnected")
                return
            for frame in decoder.feed(data):
                try:
                    msg = json.loads(frame)
                except json.JSONDecodeError:
                    out("note", what="bad_json", raw=frame.decode("utf-8", "replace"))
                    continue
                out("in", msg=msg)
                self.on_message(msg)

    def send(self, msg):
        out("out", msg=msg)
        self.writer.write(netstring(json.dumps(msg, separators=(",", ":")).encode()))

    # --- policy ----------------------------------------------------------------------------
    def on_message(self, msg):
        mid = msg.get("id")
        if mid is not None:
            if mid in self.seen_ids:
                out("note", what="duplicate", id=mid)
                return
            self.seen_ids[mid] = True
            while len(self.seen_ids) > 100000:
                self.seen_ids.popitem(last=False)
        ev = msg.get("event")
        cid = msg.get("call_id")
        if ev == "phone":
            a = self.agents.get(msg["agent"])
            if a is None:
                return
            if msg["state"] in ("registered", "unregistered"):
                a["phone"] = msg["state"]
            self.dispatch()
        elif ev == "route":
            self.calls[cid] = {"q": msg, "q0": msg, "state": "waiting", "agent": None,
                               "tried": set()}
            action = self.actions.get(msg.get("to"), "ring")
            if action != "ring":
                self.calls[cid]["state"] = "special"
                self.special(cid, msg, action)
                return
            self.dispatch()
        elif ev == "ring_failed":
            call = self.calls.get(cid)
            self.free_agent(msg.get("agent"), cid)
            if call is None:
                return
            if msg.get("final"):
                # Kamailio took the call to its fallback: no answer expected.
                call["state"] = "gone"
                return
            if call["state"] == "special":
                call["q"] = msg
                self.special(cid, msg, self.actions.get(call["q0"].get("to")))
                return
            call.update(q=msg, state="waiting", agent=None)
            call["tried"].add(msg.get("agent"))
            self.dispatch()
        elif ev == "ringing":
            pass
        elif ev == "answered":
            call = self.calls.get(cid)
            if call is not None:
                call["state"] = "talking"
        elif ev in ("released", "abandoned", "failed", "defaulted"):
            call = self.calls.pop(cid, None)
            if call is not None and call.get("agent"):
                self.free_agent(call["agent"], cid)
            self.dispatch()
        elif ev == "ignored":
            # Our command was dropped. Kamailio says where the call is now: keep what matches,
            # free an agent we reserved for a ring that did not happen.
            call = self.calls.get(cid)
            if call is None:
                return
            if msg.get("state") == "ringing" and msg.get("agent") == call.get("agent"):
                return  # a duplicate of an answer that was applied
            if msg.get("state") == "waiting" and msg.get("current_attempt") == call["q"].get("attempt"):
                return  # still waiting for the answer to the current question
            if call["state"] == "ringing":
                self.free_agent(call["agent"], cid)
                call.update(state="unknown", agent=None)
            if msg.get("state") == "gone":
                self.calls.pop(cid, None)
            self.dispatch()

    def command(self, q, action, **fields):
        cmd = {"action": action, "call_id": q["call_id"], "tindex": q["tindex"],
               "tlabel": q["tlabel"], "attempt": q["attempt"]}
        cmd.update(fields)
        return cmd

    def special(self, cid, q, action):
        if action == "ignore":
            out("note", what="ignore", call_id=cid)
        elif action == "default":
            self.emit(self.command(q, "default"))
        elif action.startswith("default:"):
            self.emit(self.command(q, "default", uri=action[len("default:"):]))
        elif action.startswith("reject:"):
            self.emit(self.command(q, "reject", code=int(action[len("reject:"):]),
                                   reason="Closed"))

    def emit(self, cmd):
        if self.answer_delay:
            asyncio.get_running_loop().call_later(self.answer_delay, self.send, cmd)
        else:
            self.send(cmd)
        if self.answer_twice:
            self.send(cmd)

    def free_agent(self, agent, cid):
        a = self.agents.get(agent)
        if a is not None and a["call"] == cid:
            a["call"] = None

    def idle_agents(self):
        return [n for n in self.agent_order
                if self.agents[n]["phone"] == "registered" and self.agents[n]["call"] is None]

    def dispatch(self):
        if self.hold_all:
            return
        for cid, call in list(self.calls.items()):
            if call["state"] != "waiting":
                continue
            idle = self.idle_agents()
            if not idle:
                out("note", what="hold", call_id=cid)
                return
            fresh = [a for a in idle if a not in call["tried"]]
            if not fresh:
                # Every free agent already failed this call: wait for someone else to free up,
                # but go round again once that happens.
                call["tried"].clear()
                out("note", what="hold", call_id=cid, why="all free agents tried")
                continue
            agent = fresh[0]
            cmd = self.command(call["q"], "ring", agent=agent)
            if self.ring_timeout:
                cmd["ring_timeout"] = self.ring_timeout
            call.update(state="ringing", agent=agent)
            self.agents[agent]["call"] = cid
            self.emit(cmd)


async def stdin_commands(bridge):
    """Lines of JSON on stdin are sent as they are (for trying edge cases by hand)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        line = line.strip()
        if line and bridge.writer is not None:
            out("out", raw=line.decode())
            bridge.writer.write(netstring(line))


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agents", nargs="+", help="agent ids, in the order they are tried")
    p.add_argument("--evapi", default="127.0.0.1:8448", help="Kamailio's evapi host:port")
    p.add_argument("--connect-retry", type=float, default=10.0,
                   help="seconds to keep trying to connect")
    p.add_argument("--ring-timeout", type=int, help="seconds an agent's phone may ring")
    p.add_argument("--hold-all", action="store_true", help="never answer (to test wait limits)")
    p.add_argument("--answer-delay", type=float, default=0.0,
                   help="answer every question this many seconds late")
    p.add_argument("--ping", type=float, default=0.0,
                   help="send a ping every N seconds (0: only one at start)")
    p.add_argument("--action", action="append", default=[], metavar="NUMBER=ACTION",
                   help="how to answer calls to a dialled number: ring (default), default, "
                        "default:URI, reject:CODE, ignore")
    p.add_argument("--answer-twice", action="store_true",
                   help="send every answer twice (Kamailio must ignore the second)")
    p.add_argument("--stdin", action="store_true", help="also send JSON lines read from stdin")
    p.add_argument("--no-quickack", action="store_true",
                   help="leave delayed ACKs on (shows the ~40 ms Nagle stall on evapi)")
    args = p.parse_args()
    host, port = args.evapi.rsplit(":", 1)
    bridge = Bridge(args.agents, args.ring_timeout, args.hold_all, args.answer_delay,
                    quickack=not args.no_quickack,
                    actions=dict(a.split("=", 1) for a in args.action),
                    answer_twice=args.answer_twice)
    tasks = [asyncio.create_task(bridge.run(host, int(port), args.connect_retry))]

    async def pinger():
        while bridge.writer is None:
            await asyncio.sleep(0.01)
        n = 0
        while True:
            n += 1
            bridge.send({"action": "ping", "id": f"p{n}"})
            if args.ping <= 0:
                return
            await asyncio.sleep(args.ping)

    tasks.append(asyncio.create_task(pinger()))
    if args.stdin:
        tasks.append(asyncio.create_task(stdin_commands(bridge)))
    await tasks[0]


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
