"""Decoding cost of a short connection's closing records: microseconds per record on the
capture's path (the decoder hands bytes to ``raw_sink``, as `gew session apply` does) and
through the unit decoders (``fast=False``, the reference), in one run, no kernel.

Records, each about a new socket (new address, new port: the caches see churn):
- ``destroy+summary``: a K_DESTROY record (per-event path) of a socket that counted
  segments, so it makes two events: the destroy and the final tcp_probe summary (with an
  srtt histogram);
- ``life close``: a final K_LIFE record holding the last four transitions (ESTABLISHED ->
  CLOSE_WAIT -> LAST_ACK -> CLOSE, one return to congestion state Open) and the same
  destroy and summary;
- ``destroy, no segments``: a K_DESTROY of a socket that counted none (one event).

    .venv/bin/python -m bench.bench_close_decode [-n 20000] [--repeat 5]

Prints the median of ``--repeat`` runs of ``-n`` records each, [min..max]. Other work may
share this machine: compare figures of one run only.
"""
from __future__ import annotations

import argparse
import statistics
import struct
import time

from gewtui.kernel.decode import Decoder, Vocab
from gewtui.kernel.probes import UNITS, tcp_state
from gewtui.kernel.probes.base import HDR, SOCK, TUPLE

_HIST = struct.Struct("<24I")


def _sock(t: bytes, segments: int) -> bytes:
    """A struct gew_sock with counters and, where it counted segments, an srtt histogram
    (read at the offset the layout gives it, so the script runs on trees without one)."""
    blob = bytearray(SOCK.pack(t, 4026532001, 42, 0, 1_000_000, 9_000_000, segments, 120 * segments, 0, 10,
                               2**31 - 1, 64000, 65000, 64000, 55, 80, 0, 1))
    hist_at = SOCK.size - 8 - _HIST.size
    if segments and hist_at >= 128:
        blob[hist_at:hist_at + _HIST.size] = _HIST.pack(*([0] * 5 + [segments - 1, 1] + [0] * 17))
    return bytes(blob)


def _hdr(kind: int, t_ns: int, process: bool) -> bytes:
    if process:
        return HDR.pack(t_ns, kind, 0, tcp_state.PROBE_ID, 1, 4242, 4242, 999, 4026532001, 77, b"redis-server")
    return HDR.pack(t_ns, kind, 1, tcp_state.PROBE_ID, 1, 0, 0, 0, 0, 0, b"")


def records(kind: str, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        sk = 0xFFFF888000000000 + 0x1000 * i
        t = TUPLE.pack(b"\x0a\x4f\x00\x02".ljust(16, b"\0"), b"\x0a\x4f\x00\x01".ljust(16, b"\0"), 6379,
                       1024 + i % 60000, 2, 6)
        now = 10**12 + 1000 * i
        if kind == "destroy+summary":
            out.append(_hdr(tcp_state.K_DESTROY, now, False) + tcp_state.DESTROY.pack(sk, 0, _sock(t, 5)))
        elif kind == "destroy, no segments":
            out.append(_hdr(tcp_state.K_DESTROY, now, False) + tcp_state.DESTROY.pack(sk, 0, _sock(t, 0)))
        else:
            items = b""
            for j, (k, a, b) in enumerate(((tcp_state.LIFE_STATE, 1, 8), (tcp_state.LIFE_CONG, 0, 0),
                                           (tcp_state.LIFE_STATE, 8, 9), (tcp_state.LIFE_STATE, 9, 7))):
                items += tcp_state.LIFE_ITEM.pack(now - 100 + j, 1, 0, 6379, 1024 + i % 60000, k, j % 2, a, b)
            items = items.ljust(tcp_state.LIFE_ITEMS * tcp_state.LIFE_ITEM.size, b"\0")
            task = tcp_state.LIFE_TASK.pack(4242, 4242, 999, 4026532001, 77, b"redis-server")
            life = tcp_state.LIFE.pack(4, 2, 4026532001, 1, task, t, items)
            out.append(_hdr(tcp_state.K_LIFE, now, False)
                       + tcp_state.REC_LIFE.pack(sk, 0, 1, 1, life, _sock(t, 5)))
    return out


def run(recs: list[bytes], fast: bool) -> tuple[float, int]:
    """Microseconds per record, and events made."""
    events: list = []
    dec = Decoder(UNITS, Vocab(ca_states={0: "Open"}), events.append, clock=lambda: 5, fast=fast)
    if fast:
        dec.raw_sink = events.append
    record = dec.record
    t0 = time.perf_counter()
    for r in recs:
        record(r)
    dt = time.perf_counter() - t0
    if dec.decode_errors:
        raise RuntimeError(f"{dec.decode_errors} decode errors")
    return dt / len(recs) * 1e6, len(events)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example: .venv/bin/python -m bench.bench_close_decode -n 20000 --repeat 5")
    ap.add_argument("-n", type=int, default=20000, help="records per run (default 20000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    args = ap.parse_args(argv)
    if args.n <= 0 or args.repeat <= 0:
        ap.error("-n and --repeat must be positive")
    print(f"closing records, {args.n} per run, median of {args.repeat} [min..max] us per record; "
          "other work may share this machine")
    print(f"{'record':<22} {'path':<16} {'us/record':>9} {'range':>15} {'events/rec':>10}")
    for kind in ("destroy+summary", "life close", "destroy, no segments"):
        recs = records(kind, args.n)
        for fast, name in ((True, "capture (bytes)"), (False, "unit decoders")):
            figs = [run(recs, fast) for _ in range(args.repeat)]
            us = [f for f, _ in figs]
            print(f"{kind:<22} {name:<16} {statistics.median(us):9.2f} {min(us):6.2f}..{max(us):<7.2f} "
                  f"{figs[0][1] / args.n:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
