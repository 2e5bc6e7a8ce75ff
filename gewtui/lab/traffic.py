"""Traffic generators of the lab: small socket programs run inside lab namespaces.

    python -m gewtui.lab.traffic ROLE [--options]

Each role produces one behaviour and stops by itself after --max-seconds (default 600), so
nothing runs forever even if the lab is never taken down. Every second a role writes its
counters (JSON) to --status FILE, which tests and `gew lab` read; servers create
--ready FILE once they listen. Standard library only: it runs in a fresh interpreter.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Callable


class Role:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.deadline = time.monotonic() + args.max_seconds
        self.counters: dict[str, int] = {}
        self._next_status = 0.0

    def alive(self) -> bool:
        return time.monotonic() < self.deadline

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n
        self.status()

    def status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.args.status or (not force and now < self._next_status):
            return
        self._next_status = now + 1.0
        tmp = self.args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"role": self.args.role, "pid": os.getpid(), "counters": self.counters}, f)
        os.replace(tmp, self.args.status)

    def ready(self) -> None:
        if self.args.ready:
            open(self.args.ready, "w").close()

    def nap(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _listener(addr: str, port: int, backlog: int = 128) -> socket.socket:
    s = socket.socket(_family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(backlog)
    return s


def _connect(r: Role, timeout: float = 5.0) -> socket.socket:
    a = r.args
    s = socket.socket(_family(a.connect), socket.SOCK_STREAM)
    s.settimeout(timeout)
    if a.bind:
        s.bind((a.bind, 0))
    try:
        s.connect((a.connect, a.port))
    except BaseException:
        s.close()
        raise
    return s


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, type(e).__name__) if isinstance(e, OSError) else type(e).__name__


# -- servers ---------------------------------------------------------------------------------
def serve(r: Role, on_data: Callable[[socket.socket, bytes, dict], bool]) -> None:
    """A selector loop: accept everything, hand data to on_data (False closes the socket)."""
    lst = _listener(r.args.bind, r.args.port)
    lst.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lst, selectors.EVENT_READ, None)
    r.ready()
    state: dict[int, dict] = {}
    while r.alive():
        for key, _ in sel.select(timeout=0.5):
            if key.data is None:
                try:
                    c, _addr = lst.accept()
                except OSError:
                    continue
                c.setblocking(False)
                state[c.fileno()] = {"bytes": 0}
                sel.register(c, selectors.EVENT_READ, "conn")
                r.count("accepted")
                continue
            c = key.fileobj
            assert isinstance(c, socket.socket)
            try:
                data = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                r.count(_errname(e))
                data = b""
            st = state.get(c.fileno(), {"bytes": 0})
            if not data or not on_data(c, data, st):
                state.pop(c.fileno(), None)
                sel.unregister(c)
                c.close()
        r.status()


def _sendall_nb(c: socket.socket, data: bytes) -> None:
    c.setblocking(True)
    c.settimeout(5)
    try:
        c.sendall(data)
    finally:
        c.setblocking(False)


def role_echo_server(r: Role) -> None:
    def echo(c: socket.socket, data: bytes, st: dict) -> bool:
        try:
            _sendall_nb(c, data)
        except OSError:
            return False
        st["bytes"] += len(data)
        return True

    serve(r, echo)


def role_sink_server(r: Role) -> None:
    serve(r, lambda c, data, st: True)


def role_reset_server(r: Role) -> None:
    """Read --after-bytes of each connection, then abort it: SO_LINGER {1, 0} sends a RST."""
    def abort_later(c: socket.socket, data: bytes, st: dict) -> bool:
        st["bytes"] += len(data)
        if st["bytes"] < r.args.after_bytes:
            return True
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.count("aborted")
        return False

    serve(r, abort_later)


def role_backlog_server(r: Role) -> None:
    """Listen with a backlog of 1 and never accept: the accept queue overflows."""
    lst = _listener(r.args.bind, r.args.port, backlog=1)
    r.ready()
    while r.alive():
        r.status(force=True)
        r.nap(1.0)
    lst.close()


# -- clients ---------------------------------------------------------------------------------
def role_rr_client(r: Role) -> None:
    """Steady request/response: connect, --per-conn exchanges of --size bytes, close."""
    a = r.args
    payload = b"q" * a.size
    while r.alive():
        try:
            with _connect(r) as s:
                for _ in range(a.per_conn):
                    s.sendall(payload)
                    got = 0
                    while got < len(payload):
                        chunk = s.recv(65536)
                        if not chunk:
                            raise ConnectionResetError(errno.ECONNRESET, "closed early")
                        got += len(chunk)
                    r.count("exchanges")
                r.count("connections")
        except OSError as e:
            r.count(_errname(e))
        r.nap(a.interval)


def role_refused_client(r: Role) -> None:
    """Connect to a closed port again and again: every attempt ends in ECONNREFUSED."""
    while r.alive():
        try:
            _connect(r).close()
            r.count("connected")
        except OSError as e:
            r.count(_errname(e))
        r.nap(r.args.interval)


def role_stream_client(r: Role) -> None:
    """One long connection sending --chunk bytes and reading whatever comes back;
    reconnects (after --interval) when the connection breaks."""
    a = r.args
    chunk = b"s" * a.chunk
    while r.alive():
        try:
            with _connect(r, timeout=5.0) as s:
                r.count("connections")
                while r.alive():
                    s.sendall(chunk)
                    r.count("bytes_sent", len(chunk))
                    s.setblocking(False)
                    try:
                        while s.recv(1 << 20):
                            pass
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
                        s.settimeout(5.0)
                    if a.pause:
                        r.nap(a.pause)
        except OSError as e:
            r.count(_errname(e))
        r.nap(a.interval)


def role_swarm_client(r: Role) -> None:
    """--connections simultaneous connects, held for a moment, closed, repeated."""
    a = r.args
    while r.alive():
        socks = []
        for _ in range(a.connections):
            s = socket.socket(_family(a.connect), socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((a.connect, a.port))
            socks.append(s)
            r.count("attempts")
            if err not in (0, errno.EINPROGRESS):
                r.count(errno.errorcode.get(err, str(err)))
        r.nap(a.interval)
        for s in socks:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            r.count("pending_or_open" if err == 0 else errno.errorcode.get(err, str(err)))
            s.close()


def role_route_flapper(r: Role) -> None:
    """Switch the route to --dest between the --via/--dev pairs every --period seconds."""
    a = r.args
    paths = [p.split("@") for p in a.path]
    i = 0
    while r.alive():
        via, dev = paths[i % len(paths)]
        cmd = ["ip"] + (["-6"] if ":" in a.dest else []) + ["route", "replace", a.dest, "via", via, "dev", dev]
        if a.bind:
            cmd += ["src", a.bind]
        res = subprocess.run(cmd, capture_output=True, text=True)
        r.count("flips" if res.returncode == 0 else "flip_errors")
        r.counters["current_path"] = i % len(paths)
        r.status(force=True)
        i += 1
        r.nap(a.period)


ROLES: dict[str, Callable[[Role], None]] = {
    "echo-server": role_echo_server, "sink-server": role_sink_server,
    "reset-server": role_reset_server, "backlog-server": role_backlog_server,
    "rr-client": role_rr_client, "refused-client": role_refused_client,
    "stream-client": role_stream_client, "swarm-client": role_swarm_client,
    "route-flapper": role_route_flapper,
}


def _program_roles() -> None:
    # real Debian programs (nginx, wrk, ab, redis, iperf3, curl) wrapped as roles
    from gewtui.lab.programs import ROLES as PROGRAM_ROLES

    ROLES.update(PROGRAM_ROLES)


_program_roles()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gewtui.lab.traffic")
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("--bind", default="")
    p.add_argument("--connect", default="")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--per-conn", type=int, default=5)
    p.add_argument("--chunk", type=int, default=16384)
    p.add_argument("--after-bytes", type=int, default=65536)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--dest", default="")
    p.add_argument("--path", action="append", default=[], help="VIA@DEV, repeat for each path")
    p.add_argument("--period", type=float, default=3.0)
    p.add_argument("--backlog", type=int, default=511)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--status", default="")
    p.add_argument("--ready", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    r = Role(args)
    try:
        ROLES[args.role](r)
    except KeyboardInterrupt:
        pass
    finally:
        r.status(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
