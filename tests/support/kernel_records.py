"""Random kernel records of the kinds the decoder's fast path takes, laid out as the probes
lay them out, and the vocabulary read from the captured tracefs formats in tests/data.
"""
import random
from pathlib import Path

from gewtui.kernel.decode import Vocab
from gewtui.kernel.probes import drops, tcp_events, tcp_probe, tcp_state
from gewtui.kernel.probes.base import HDR, HIST, SOCK, SOCK_HIST, SRTT_BUCKETS, TUPLE
from gewtui.runtime.tracefs import Tracefs

# The tracefs formats captured from a kernel (tests/data/tracefs).
DATA = Path(__file__).resolve().parents[1] / "data" / "tracefs"
SOCKS = [0xFFFF888000001000 + 0x800 * i for i in range(6)] + [0]


def _addr(rnd, family):
    n = 4 if family == 2 else 16
    return bytes(rnd.getrandbits(8) for _ in range(n)).ljust(16, b"\0")


def _tuple(rnd):
    family = rnd.choice([2, 2, 10, 0, 1])
    return TUPLE.pack(_addr(rnd, family), _addr(rnd, family), rnd.choice([0, 1, 80, 40000, 65535]),
                      rnd.choice([0, 9, 443, 65535]), family, rnd.choice([0, 6, 17]))


def with_hist(blob: bytes, counts) -> bytes:
    """A struct gew_sock with its srtt histogram set (``counts``, up to SRTT_BUCKETS)."""
    counts = list(counts) + [0] * (SRTT_BUCKETS - len(counts))
    return blob[:SOCK_HIST] + HIST.pack(*counts) + blob[SOCK_HIST + HIST.size:]


def sock_blob(rnd, t, ns) -> bytes:
    """A random struct gew_sock: counters that sometimes run backwards against an earlier
    window (a new life at the address), the minimum window unset or not, an srtt histogram
    empty or with a few buckets counted (some past a varint's first byte)."""
    blob = SOCK.pack(t, ns, rnd.choice([0, 42]), rnd.choice([0, 5, 2**40]), rnd.choice([0, 100]),
                     rnd.choice([0, 200, 2**50]), rnd.choice([0, 0, 3, 1000]), rnd.choice([0, 300, 2**33]),
                     rnd.choice([0, 0, 2]), 10, rnd.choice([0, 20]), 30, 40, rnd.choice([0, 50, 0xFFFFFFFF]),
                     rnd.choice([0, 60, 300000]), 70, rnd.choice([0, 1]), 1)
    counts = [0] * SRTT_BUCKETS
    for _ in range(rnd.choice([0, 1, 3])):
        counts[rnd.randrange(SRTT_BUCKETS)] += rnd.choice([1, 5, 200, 70000])
    return with_hist(blob, counts)


def _vocab():
    v = Vocab.from_kernel(Tracefs(str(DATA)))
    v.ca_states = {0: "Open", 1: "Disorder", 4: "Loss"}
    return v


def _hdr(rnd, kind, probe):
    process = rnd.random() < 0.5
    tgid = rnd.choice([0, 42, 43]) if process else 0
    pid = tgid + rnd.choice([0, 1]) if tgid else 0
    comm = rnd.choice([b"curl", b"srv", b"\xff\xfebad", b"sixteen-bytes-xx"]) if tgid else b""
    return HDR.pack(rnd.getrandbits(60), kind, 0 if process else rnd.choice([1, 2]), probe, rnd.randrange(4),
                    pid, tgid, 1000 if tgid else 0, rnd.choice([0, 4026531840]) if tgid else 0,
                    77 if tgid else 0, comm)


def _record(rnd, vocab):
    """A random record of a kind the fast path takes, sometimes one it hands back."""
    kind = rnd.choice([tcp_state.K_STATE, tcp_state.K_CONG, tcp_state.K_DESTROY, tcp_events.K_RETRANS,
                       tcp_events.K_RESET_SENT, tcp_events.K_RESET_RECV, drops.K_DROP, tcp_state.K_LIFE])
    if kind == tcp_state.K_LIFE:
        return _life_record(rnd)
    sk, t, ns = rnd.choice(SOCKS), _tuple(rnd), rnd.choice([0, 4026532001])
    if kind == tcp_state.K_STATE:
        body = tcp_state.STATE.pack(t, sk, ns, rnd.randrange(14), rnd.choice([1, 2, 7, 12, 13, 200]))
        probe = tcp_state.PROBE_ID
    elif kind == tcp_state.K_CONG:
        body, probe = tcp_state.CONG.pack(t, sk, ns, rnd.choice([0, 1, 4, 9])), tcp_state.PROBE_ID
    elif kind == tcp_state.K_DESTROY:
        # or, one time in three, a zero-window edge of the socket (unit decoder): a summary
        # window that a later destroy's final summary starts from
        if rnd.random() < 0.33:
            body, kind, probe = tcp_probe.ZW.pack(sk, sock_blob(rnd, t, ns)), tcp_probe.K_PROBE_ZW, tcp_probe.PROBE_ID
        else:
            body = tcp_state.DESTROY.pack(sk, rnd.choice([0, 4242, 2**40]), sock_blob(rnd, t, ns))
            probe = tcp_state.PROBE_ID
    elif kind == tcp_events.K_RETRANS:
        body = tcp_events.RETRANS.pack(t, sk, ns, rnd.choice([1, 2, 99, -1]), rnd.choice([0, -101, 5]),
                                       rnd.choice([0, 1]))
        probe = tcp_events.PROBE_ID
    elif kind in (tcp_events.K_RESET_SENT, tcp_events.K_RESET_RECV):
        body = tcp_events.RESET.pack(t, sk, rnd.choice([0, 77]), ns, rnd.choice([1, 7, 12]),
                                     rnd.choice([1, 2, 60000]), 1 if kind == tcp_events.K_RESET_SENT else 2)
        probe = tcp_events.PROBE_ID
    else:
        reason = rnd.choice(list(vocab.drop_reasons)[:6] + [vocab.drop_reason_value("TCP_LISTEN_OVERFLOW"), 60000])
        body = drops.DROP.pack(t, sk, rnd.choice([0, 0xFFFFFFFF81000000]), reason, ns, rnd.choice([0, 3, 300]),
                               rnd.choice([0x0800, 0x86DD]), rnd.choice([0, 1, 2, 3, 9]),
                               rnd.choice([b"veth0", b"", b"sixteen-bytes-xx"]))
        probe = drops.PROBE_ID
    return _hdr(rnd, kind, probe) + body


def _life_record(rnd):
    """A lifecycle record (bpf/tcp_state.c struct gew_rec_life): 0..8 held items of every
    kind, in either context, with or without a task, final (with counters) or not, sometimes
    numbered after items that already crossed."""
    sk, t, ns = rnd.choice(SOCKS[:-1]), _tuple(rnd), rnd.choice([0, 4026532001])
    _, _, sport, dport, _, _ = TUPLE.unpack(t)
    has_task = rnd.random() < 0.7
    task = (tcp_state.LIFE_TASK.pack(rnd.choice([42, 43, 0]), rnd.choice([42, 43, 0]), 1000, 4026531840, 77,
                                     rnd.choice([b"redis-server", b"\xff\xfebad", b"sixteen-bytes-xx"]))
            if has_task else bytes(tcp_state.LIFE_TASK.size))
    n = rnd.randrange(tcp_state.LIFE_ITEMS + 1)
    items = b""
    for _ in range(n):
        kind = rnd.choice([tcp_state.LIFE_STATE, tcp_state.LIFE_STATE, tcp_state.LIFE_OWNER, tcp_state.LIFE_CONG])
        a = {tcp_state.LIFE_STATE: rnd.choice([7, 10, 2, 12, 1, 4]), tcp_state.LIFE_OWNER: rnd.choice([1, 2, 9]),
             tcp_state.LIFE_CONG: rnd.choice([0, 1, 9])}[kind]
        ports = (sport, dport) if rnd.random() < 0.8 else (rnd.choice([0, 41000]), rnd.choice([0, 6379]))
        items += tcp_state.LIFE_ITEM.pack(rnd.getrandbits(60), rnd.randrange(4),
                                          rnd.choice([0, 42, 43, 0xFFFFFFFF]), *ports, kind,
                                          rnd.choice([0, 0, 1, 2]), a, rnd.choice([1, 2, 7, 10, 12]))
    items = items.ljust(tcp_state.LIFE_ITEMS * tcp_state.LIFE_ITEM.size, b"\0")
    life = tcp_state.LIFE.pack(n, rnd.choice([0, 0, 1, 3]), ns, int(has_task), task, t, items)
    final = rnd.random() < 0.5
    blob = sock_blob(rnd, t, ns)
    body = tcp_state.REC_LIFE.pack(sk, rnd.choice([0, 4242]) if final else 0, int(final),
                                   1 if final else rnd.choice([2, 3, 5, 8]), life, blob if final else bytes(SOCK.size))
    return _hdr(rnd, tcp_state.K_LIFE, tcp_state.PROBE_ID) + body
