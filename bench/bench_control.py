"""Control plane: events/s streamed to a paired peer while the session loses nothing.

Workload: bench/churn.c (built with gcc) in a scratch namespace makes refused TCP
connections on the namespace's loopback at a paced rate (~7 session records each).

For each rate, in the same run and one after the other: the session as users run it,
`gew session apply --scope netns=NS --serve` (its own process, normal scheduling), with a
paired peer in this process streaming the session's events from its first event and
following it live (gewtui.control.client, every request signed); the same session with
nobody connected; and the session without --serve (the baseline). The peer uses StreamEventBatches, as `gew peer stream
events` does; a separate table compares it with StreamEvents. Figures: the session's own count of events and of lost
records (its end line), the events the peer received, and the peer's rate from its first to
its last event. A final run adds a peer that stops reading: it must be cut off with a
counted notice while the session still loses nothing.

``.venv/bin/python bench/bench_control.py [--seconds S] [--rates A,B,C]``
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import build_c, end, load, log, require_root, scratch_netns, table  # noqa: E402

PORT = 9
GEW = [sys.executable, "-m", "gewtui.cli.main"]
_END = re.compile(r"ended \((\w+)\): (\d+) events, (\d+) lost")


def _pair(etc: str, tmp: str) -> str:
    env = dict(os.environ, GEWYVERN_ETC=etc)
    subprocess.run(GEW + ["peer", "keygen", "--out", f"{tmp}/peer", "--name", "bench"], check=True,
                   capture_output=True)
    tok = subprocess.run(GEW + ["pair", "new", "--json"], env=env, check=True, capture_output=True, text=True)
    import json

    subprocess.run(GEW + ["pair", "accept", json.loads(tok.stdout)["token"], "--peer-key", f"{tmp}/peer/bench.pub"],
                   env=env, check=True, capture_output=True)
    return f"{tmp}/peer/bench.key"


class Peer(threading.Thread):
    """A paired client following StreamEvents; ``stall`` stops reading after its first event."""

    def __init__(self, sock: str, key: str, stall: bool = False):
        super().__init__(daemon=True)
        self.sock, self.key, self.stall = sock, key, stall
        self.n = 0
        self.first = self.last = 0.0
        self.ended = ""
        self.ids_in_order = True

    def run(self) -> None:
        from gewtui.control.client import CallFailed, PeerClient, load_key

        prev = 0
        try:
            with PeerClient(self.sock, load_key(self.key)) as c:
                for ev in c.stream("events"):
                    now = time.monotonic()
                    if not self.n:
                        self.first = now
                    self.n += 1
                    self.last = now
                    if ev.id != prev + 1:
                        self.ids_in_order = False
                    prev = ev.id
                    if self.stall:
                        time.sleep(3600)
        except CallFailed as e:
            self.ended = f"{e.status}: {e.details}"
        except Exception as e:       # the session went away
            self.ended = type(e).__name__

    def rate(self) -> float:
        return (self.n - 1) / (self.last - self.first) if self.n > 1 and self.last > self.first else 0.0


def run(ns: str, churn: str, rate: int, seconds: float, tmp: str, etc: str, key: str | None,
        stall: bool = False, serve: bool = True) -> dict:
    rec = f"{tmp}/s-{rate}-{bool(key)}.gewrec"
    errf = f"{tmp}/s.stderr"
    env = dict(os.environ, GEWYVERN_ETC=etc)
    with open(errf, "w") as err:
        s = subprocess.Popen(GEW + ["session", "apply", "--scope", f"netns={ns}", "--record", rec,
                                    "--ringbuf-pages", "1024"] + (["--serve"] if serve else []),
                             env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        sock = ""
        deadline = time.monotonic() + 90
        while not sock and time.monotonic() < deadline:
            text = open(errf).read()
            m = re.search(r"serving the control plane on (\S+)", text)
            sock = m.group(1) if m else ("-" if not serve and "attached" in text else "")
            if s.poll() is not None:
                raise RuntimeError(open(errf).read()[-500:])
            time.sleep(0.2)
        peers = [Peer(sock, key)] if key else []
        if stall and key:
            peers.append(Peer(sock, key, stall=True))
        for p in peers:
            p.start()
        w = subprocess.Popen(["ip", "netns", "exec", ns, churn, str(rate), str(seconds), str(PORT)],
                             stdout=subprocess.PIPE, text=True)
        out, _ = w.communicate(timeout=seconds + 60)
        attempts = int(re.search(r"attempts=(\d+)", out).group(1))
        # let the peer catch up with the recording (flushed once a second) before the end
        t_end = time.monotonic() + 30
        while peers and time.monotonic() < t_end:
            st = re.findall(r"events (\d+)", open(errf).read())
            if st and peers[0].n >= int(st[-1]) and time.monotonic() > peers[0].last + 1.5:
                break
            time.sleep(0.2)
        s.send_signal(signal.SIGINT)
        s.wait(60)
    finally:
        end(s)
    text = open(errf).read()
    m = _END.search(text)
    cut = len(re.findall(r"cut off", text))
    notice = next((ln for ln in text.splitlines() if "cut off" in ln), "")
    for p in peers:
        p.join(10)
    return {"rate": rate, "attempts": attempts, "events": int(m.group(2)), "lost": int(m.group(3)),
            "peer": peers[0] if peers else None, "cutoffs": cut,
            "notice": notice}


def stream_rates(tmp: str, etc: str, key: str, n: int = 200_000) -> list[list[str]]:
    """StreamEvents (one message per event) against StreamEventBatches, over a finished
    recording of ``n`` events, server and peer in this process: the gRPC cost per message."""
    os.environ["GEWYVERN_ETC"] = etc
    from gewtui.control.client import PeerClient, load_key
    from gewtui.control.server import ControlServer
    from gewtui.control.service import ServeContext
    from gewtui.model.engine import Engine
    from gewtui.pb import events_pb2, recording_pb2
    from gewtui.recording import RecordingWriter

    path = f"{tmp}/synthetic.gewrec"
    w = RecordingWriter(path, recording_pb2.RecordingHeader())
    for i in range(1, n + 1):
        ev = events_pb2.Event(id=i, ktime_ns=10**9 + i * 1000, cpu=1)
        ev.tcp_state.old_state, ev.tcp_state.new_state, ev.tcp_state.tuple.sport = 1, 2, 1000 + i % 5000
        w.write_event(ev)
    w.close()
    run_dir = f"{tmp}/run"
    os.makedirs(run_dir, mode=0o700)
    srv = ControlServer(ServeContext(recording=path, engine_factory=Engine), run_dir).start()
    rows = []
    try:
        with PeerClient(srv.path, load_key(key)) as c:
            for kind, label in (("events-plain", "StreamEvents (one Event a message)"),
                                ("events", "StreamEventBatches (gew peer stream events)")):
                t0 = time.perf_counter()
                got = 0
                for _ in c.stream(kind):
                    got += 1
                    if got == n:
                        break
                rows.append([label, f"{n:,}", f"{n / (time.perf_counter() - t0):,.0f}"])
    finally:
        srv.close()
    return rows


def main() -> int:
    require_root("Control plane: events streamed to a paired peer")
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rates", default="500,1000,3000")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gew-bench-ctl-") as tmp, scratch_netns("ctl") as ns:
        churn = build_c("churn.c", tmp)
        etc = f"{tmp}/etc"
        key = _pair(etc, tmp)
        for rate in rates:
            for label, with_peer, serve in (("--serve, a peer streaming", True, True),
                                            ("--serve, no peer", False, True), ("no --serve", False, False)):
                log(f"{rate} attempts/s, {label}")
                r = run(ns, churn, rate, a.seconds, tmp, etc, key if with_peer else None, serve=serve)
                p = r["peer"]
                rows.append([f"{rate:,}", label,
                             f"{r['events']:,}", r["lost"],
                             f"{p.n:,}" if p else "-", f"{p.rate():,.0f}" if p else "-",
                             ("yes" if p.ids_in_order else "NO") if p else "-"])
        log("StreamEvents against StreamEventBatches on a finished recording")
        micro = stream_rates(tmp, etc, key)
        log("a peer that stops reading")
        r = run(ns, churn, rates[-1], a.seconds, tmp, etc, key, stall=True)
        slow = (f"With a second peer that stops reading, at {rates[-1]:,} attempts/s: the session recorded "
                f"{r['events']:,} events and lost {r['lost']}; the streaming peer received {r['peer'].n:,} "
                f"at {r['peer'].rate():,.0f}/s; the stalled peer was cut off "
                f"with a counted notice ({r['cutoffs']}): `{r['notice'].strip()[:200]}`.")
    print("## Control plane: events streamed to a paired peer\n")
    print(table(["attempts/s", "run", "session events", "session lost", "peer received", "peer events/s",
                 "ids 1..N in order"], rows))
    print()
    print(slow)
    print()
    print("The cost of one gRPC message per event, server and peer in one process, over a finished "
          "recording (the same events both ways):\n")
    print(table(["stream", "events", "events/s"], micro))
    print()
    print(f"The peer reads from the session's first event and follows it live, and is given up to 30 s after "
          f"the workload to catch up before the session is stopped. The last few events of each session come "
          f"from its final drain, after the socket is gone, so 'peer received' stays a handful below "
          f"'session events' even when the peer kept up. The session runs as users run "
          f"it (`gew session apply --serve`, normal scheduling); the peer is this bench's process. "
          f"{a.seconds:g} s of churn per run; other engineers' suites share this machine ({load()}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
