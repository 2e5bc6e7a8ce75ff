"""Latency on the feed path and in texts: a flow's RTT distribution (the kernel's per-socket
srtt histograms, summed from tcp_probe summaries) and its connect latencies (from each
socket's own transitions: CLOSE -> SYN_SENT to SYN_SENT -> ESTABLISHED).

Both are log2 histograms of microseconds (bucket i: [2^i, 2^(i+1)) us), kept on the flow as
plain lists; connect latency also keeps its exact least and greatest.
"""
from __future__ import annotations

BUCKETS = 24
_SYN_SENT = 2


def add_rtt(f, hist) -> None:
    """Add one summary's srtt buckets to the flow's distribution."""
    r = f.rtt
    if not r:
        r = f.rtt = [0] * BUCKETS
    for i, n in enumerate(hist[:BUCKETS]):
        r[i] += n


def connected(reg, f, m, t: int) -> None:
    """SYN_SENT -> ESTABLISHED: the socket's connect latency, from its SYN_SENT transition
    (its first event when the session saw the connect; otherwise there is none to measure)."""
    ev = reg.event(m.first_eid)
    if ev is None or ev.WhichOneof("body") != "tcp_state" or ev.tcp_state.new_state != _SYN_SENT:
        return
    us = max(0, (t - ev.ktime_ns) // 1000)
    c = f.clat
    if not c:
        c = f.clat = [us, us] + [0] * BUCKETS
    else:
        c[0], c[1] = min(c[0], us), max(c[1], us)
    c[2 + min(max(us, 1).bit_length() - 1, BUCKETS - 1)] += 1


def bucket_text(i: int) -> str:
    lo = 1 << i
    return f"{_us(lo)}-{_us(lo * 2)}" if i < BUCKETS - 1 else f">={_us(lo)}"


def _us(v: int) -> str:
    if v >= 1_000_000:
        return f"{v // 1_000_000}s"
    if v >= 1000:
        return f"{v // 1000}ms"
    return f"{v}us"


def median_bucket(hist) -> int | None:
    total = sum(hist)
    if not total:
        return None
    run = 0
    for i, n in enumerate(hist):
        run += n
        if run * 2 >= total:
            return i
    return None


def rtt_text(hist) -> str:
    """e.g. "srtt over 1,234 segments: median in 256us-512us, highest in 1ms-2ms"."""
    total = sum(hist)
    med = median_bucket(hist)
    top = max(i for i, n in enumerate(hist) if n)
    return (f"srtt over {total} segment(s): median in {bucket_text(med)}, highest in"
            f" {bucket_text(top)}")


def connect_text(clat) -> str:
    hist = clat[2:]
    n = sum(hist)
    return (f"connect latency over {n} connection(s): least {clat[0]} us, median in"
            f" {bucket_text(median_bucket(hist))}, greatest {clat[1]} us")
