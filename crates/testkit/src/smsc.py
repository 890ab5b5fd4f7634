"""An SMPP 3.4 SMSC for tests: PyPI smpp34's Server behind a small TCP proxy, driven over
stdin/stdout with JSON lines (see smsc.rs for the commands and events).

The SMSC logic (binds, submit_sm answers, deliver_sm) is smpp34's. The proxy passes PDUs through
untouched; it only adds what smpp34 cannot do from its Python API: close a link abruptly
("drop"), go silent ("mute"), and send the ESME an enquire_link, an unbind or an unknown command
and report the answer (smpp34's own Esme.unbind() does not accept the ESME's unbind_resp).
"""

import asyncio
import json
import socket
import struct
import sys
import threading

import smpp34

RESPONSE = 0x80000000
ENQUIRE_LINK = 0x15
UNBIND = 0x06
UNKNOWN_COMMAND = 0x00000777
INJECTED_BASE = 0x7FFF0000

STATES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}

out_lock = threading.Lock()


def emit(ev, **kw):
    kw["ev"] = ev
    with out_lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def pdu(command_id, seq, body=b"", status=0):
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


async def read_frame(reader):
    head = await reader.readexactly(4)
    (n,) = struct.unpack(">I", head)
    if n < 16 or n > 70000:
        raise ValueError("bad command_length %d" % n)
    return head + await reader.readexactly(n - 4)


def header(frame):
    return struct.unpack(">III", frame[4:16])


class Conn:
    """One ESME connection through the proxy."""

    def __init__(self, n, esme_w, smsc_w):
        self.n = n
        self.esme_w = esme_w
        self.smsc_w = smsc_w
        self.muted = False
        self.injected = {}

    def close(self):
        for w in (self.esme_w, self.smsc_w):
            try:
                w.transport.abort()
            except Exception:
                pass


class Sim:
    def __init__(self):
        self.server = None
        self.inner_port = None
        self.esme = None
        self.conns = []
        self.conn_seq = 0
        self.hold = 0
        self.held = []
        self.reject = []
        self.next_id = 0
        self.inject_seq = 0

    async def start(self):
        for _ in range(20):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            try:
                self.server = smpp34.Server("127.0.0.1", port, system_id="SIMSMSC")
                await self.server.start()
                self.inner_port = port
                break
            except Exception as e:  # the port was taken in between: try another
                last = e
        else:
            raise RuntimeError("smpp34 server did not start: %r" % (last,))
        proxy = await asyncio.start_server(self.on_esme, "127.0.0.1", 0)
        self.proxy = proxy
        asyncio.get_running_loop().create_task(self.events())
        emit("ready", port=proxy.sockets[0].getsockname()[1])

    async def on_esme(self, esme_r, esme_w):
        try:
            smsc_r, smsc_w = await asyncio.open_connection("127.0.0.1", self.inner_port)
        except OSError as e:
            emit("proxy_error", error=repr(e))
            esme_w.transport.abort()
            return
        self.conn_seq += 1
        c = Conn(self.conn_seq, esme_w, smsc_w)
        self.conns.append(c)
        emit("connected", conn=c.n)
        up = asyncio.get_running_loop().create_task(self.esme_to_smsc(c, esme_r))
        down = asyncio.get_running_loop().create_task(self.smsc_to_esme(c, smsc_r))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        c.close()
        up.cancel()
        down.cancel()
        if c in self.conns:
            self.conns.remove(c)
        emit("disconnected", conn=c.n)

    async def esme_to_smsc(self, c, r):
        try:
            while True:
                frame = await read_frame(r)
                cid, status, seq = header(frame)
                if cid & RESPONSE and seq in c.injected:
                    kind = c.injected.pop(seq)
                    emit(kind, status=status, command_id=cid, conn=c.n)
                    if kind == "unbind_resp":
                        return
                    continue
                if cid == ENQUIRE_LINK:
                    emit("enquire_link", conn=c.n, muted=c.muted)
                if c.muted:
                    continue
                c.smsc_w.write(frame)
                await c.smsc_w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return

    async def smsc_to_esme(self, c, r):
        try:
            while True:
                frame = await read_frame(r)
                if c.muted:
                    continue
                c.esme_w.write(frame)
                await c.esme_w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return

    async def events(self):
        while True:
            ev = await self.server.next()
            if isinstance(ev, smpp34.Esme):
                self.esme = ev
                emit("bound", system_id=ev.system_id, session=ev.session_id)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self.on_submit(ev)
            elif isinstance(ev, smpp34.Unbound):
                emit("unbound", session=ev.session_id)

    def on_submit(self, ev):
        sm = ev.short_message
        udh = None
        payload = sm
        if ev.esm_class & 0x40 and len(sm) >= 1 and len(sm) >= 1 + sm[0]:
            h = sm[1 : 1 + sm[0]]
            payload = sm[1 + sm[0] :]
            if len(h) >= 5 and h[0] == 0 and h[1] == 3:
                udh = [h[2], h[3], h[4]]
        if ev.data_coding == 8:
            text = payload.decode("utf-16-be", errors="replace")
        else:
            # Unpacked GSM-7 septets read as Latin-1: right for letters, digits and most
            # punctuation; tests needing more decode "hex".
            text = payload.decode("latin-1")
        info = dict(
            session=ev.session_id,
            source=ev.source_addr,
            source_ton=ev.source_addr_ton,
            source_npi=ev.source_addr_npi,
            dest=ev.destination_addr,
            dest_ton=ev.dest_addr_ton,
            dest_npi=ev.dest_addr_npi,
            esm_class=ev.esm_class,
            data_coding=ev.data_coding,
            registered_delivery=ev.registered_delivery,
            udh=udh,
            hex=payload.hex(),
            text=text,
        )
        rejecting = None
        if self.reject:
            if self.reject[0][0] == 0:
                rejecting = self.reject.pop(0)[1]
            else:
                self.reject[0][0] -= 1
        if rejecting is not None:
            ev.reject(rejecting)
            emit("submit", status=rejecting, message_id=None, held=False, **info)
        elif self.hold > 0:
            self.hold -= 1
            self.held.append((ev, info))
            emit("submit", status=None, message_id=None, held=True, **info)
        else:
            # Reported before it is answered: a test that saw the answer finds the submit.
            mid = self.next_mid()
            emit("submit", status=0, message_id=mid, held=False, **info)
            ev.accept(mid)

    def next_mid(self):
        self.next_id += 1
        return "M%06d" % self.next_id

    def accept(self, ev):
        mid = self.next_mid()
        ev.accept(mid)
        return mid

    def deliver(self, cmd_id, kwargs):
        esme = self.esme
        if esme is None:
            emit("deliver_error", id=cmd_id, error="no ESME bound")
            return

        async def go():
            try:
                r = await esme.deliver_sm(**kwargs)
                emit("deliver_resp", id=cmd_id, status=r.command_status)
            except Exception as e:
                emit("deliver_error", id=cmd_id, error=repr(e))

        asyncio.get_running_loop().create_task(go())

    def inject(self, command_id, kind):
        if not self.conns:
            emit("inject_error", kind=kind, error="no connection")
            return
        c = self.conns[-1]
        self.inject_seq += 1
        seq = INJECTED_BASE + self.inject_seq
        c.injected[seq] = kind
        c.esme_w.write(pdu(command_id, seq))

    def command(self, cmd):
        name = cmd.get("cmd")
        cid = cmd.get("id", 0)
        if name == "mo":
            kwargs = dict(
                source_addr=cmd["from"],
                source_addr_ton=cmd.get("ton", 1),
                source_addr_npi=cmd.get("npi", 1),
                dest_addr_ton=cmd.get("dest_ton", 0),
                dest_addr_npi=cmd.get("dest_npi", 1),
                esm_class=cmd.get("esm_class", 0),
                data_coding=cmd.get("coding", 0),
                tlvs=[smpp34.Tlv(t, bytes.fromhex(v)) for t, v in cmd.get("tlvs", [])],
            )
            self.deliver(cid, dict(destination_addr=cmd["to"], short_message=bytes.fromhex(cmd["hex"]), **kwargs))
        elif name == "receipt":
            stat = cmd.get("stat", "DELIVRD")
            err = cmd.get("err", "000")
            text = "id:%s sub:001 dlvrd:%s submit date:2611071200 done date:2611071201 stat:%s err:%s text:" % (
                cmd["message_id"],
                "001" if stat == "DELIVRD" else "000",
                stat,
                err,
            )
            tlvs = []
            if cmd.get("tlvs", True):
                tlvs = [
                    smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, cmd["message_id"].encode() + b"\0"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([STATES.get(stat, 7)])),
                ]
            self.deliver(
                cid,
                dict(
                    destination_addr=cmd.get("to", "4900"),
                    short_message=text.encode(),
                    source_addr=cmd.get("from", "491510000000"),
                    source_addr_ton=1,
                    source_addr_npi=1,
                    esm_class=0x04,
                    tlvs=tlvs,
                ),
            )
        elif name == "drop":
            n = len(self.conns)
            for c in list(self.conns):
                c.close()
            emit("dropped", connections=n)
        elif name == "mute":
            for c in self.conns:
                c.muted = True
            emit("muted", connections=len(self.conns))
        elif name == "hold_submits":
            self.hold = cmd.get("n", 1 << 30)
            emit("holding", n=self.hold)
        elif name == "release":
            self.hold = 0
            held, self.held = self.held, []
            for ev, info in held:
                try:
                    mid = self.accept(ev)
                    emit("released", message_id=mid, **info)
                except Exception as e:
                    emit("release_error", error=repr(e))
        elif name == "reject":
            # After `after` more submits pass, the next is answered with `status`.
            self.reject.append([cmd.get("after", 0), cmd["status"]])
            emit("rejecting", status=cmd["status"], after=cmd.get("after", 0))
        elif name == "enquire_link":
            self.inject(ENQUIRE_LINK, "enquire_link_resp")
        elif name == "unbind":
            self.inject(UNBIND, "unbind_resp")
        elif name == "unknown":
            self.inject(UNKNOWN_COMMAND, "generic_nack")
        elif name == "sync":
            # Nothing: its ack comes after every event printed before it.
            pass
        else:
            emit("error", error="unknown command %r" % (name,))


def stdin_lines(loop, queue):
    for line in sys.stdin:
        line = line.strip()
        if line:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def main():
    sim = Sim()
    await sim.start()
    queue = asyncio.Queue()
    threading.Thread(target=stdin_lines, args=(asyncio.get_running_loop(), queue), daemon=True).start()
    while True:
        line = await queue.get()
        if line is None:
            return
        cmd = {}
        try:
            cmd = json.loads(line)
            sim.command(cmd)
            emit("ack", cmd_id=cmd.get("id"))
        except Exception as e:
            emit("error", cmd_id=cmd.get("id"), error=repr(e), line=line)


if __name__ == "__main__":
    asyncio.run(main())
