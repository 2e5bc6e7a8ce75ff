"""Random kernel records of the kinds the decoder's fast path takes, laid out as the probes
lay them out, and the vocabulary read from the captured tracefs formats in tests/data.
"""
import random
from pathlib import Path

from gewtui.kernel.decode import Vocab
from gewtui.kernel.probes import drops, tcp_events, tcp_state
from gewtui.kernel.probes.base import HDR, SOCK, TUPLE
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
                       tcp_events.K_RESET_SENT, tcp_events.K_RESET_RECV, drops.K_DROP])
    sk, t, ns = rnd.choice(SOCKS), _tuple(rnd), rnd.choice([0, 4026532001])
    if kind == tcp_state.K_STATE:
        body = tcp_state.STATE.pack(t, sk, ns, rnd.randrange(14), rnd.choice([1, 2, 7, 12, 13, 200]))
        probe = tcp_state.PROBE_ID
    elif kind == tcp_state.K_CONG:
        body, probe = tcp_state.CONG.pack(t, sk, ns, rnd.choice([0, 1, 4, 9])), tcp_state.PROBE_ID
    elif kind == tcp_state.K_DESTROY:
        blob = SOCK.pack(t, ns, 0, 5, 100, 200, rnd.choice([0, 0, 3]), 300, 0, 10, 20, 30, 40, 50, 60, 70, 0, 1)
        body, probe = tcp_state.DESTROY.pack(sk, rnd.choice([0, 4242, 2**40]), blob), tcp_state.PROBE_ID
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
