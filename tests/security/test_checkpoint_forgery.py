"""A forged stored checkpoint never changes what a replay concludes (README, Reliability:
Stored checkpoints).

Each test writes a recording of a lossy session (300 connections to one service, all
retransmitting: a retransmission storm) with stored checkpoints crafted with the project's own
modules the way someone editing the file, or another host, would, replays it the way
gew shell and gew-tui do (the Debugger, jumped to the end, in a child process) and asserts
that its flows and chains are exactly what ``gew export`` of the same file prints (a fold of
every event that reads no stored state), within bounded time and memory. A replay of the
same recording with this host's own states is the baseline: it jumps, and agrees too.
"""
from __future__ import annotations

import json
import os
import pickle
import pickletools
import struct
import zlib
from pathlib import Path

import pytest

from gewtui.model import persist
from gewtui.model.engine import Engine
from gewtui.model.entities import Flow, IfaceContext, Member
from gewtui.model.matcher import Episode, Progress
from gewtui.recording import open_recording
from tests.security import checkpoint_forge as cf
from tests.security.checkpoint_forge import _colliding_pairs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the host key is root-only: "
                                "these tests write states with it and need root")

# Bounds for a replay of a forged file beside the same replay of the genuine one (the
# attacks below cost a pickle-based build tens of seconds or half a GiB and more).
EXTRA_S = 10.0
EXTRA_MIB = 200.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forgery")
    host = cf.key_dir(tmp / "host-key")
    other = cf.key_dir(tmp / "other-key")
    events = cf.lossy_events()
    cf.use_key(host)
    genuine = cf.write(str(tmp / "genuine.gewrec"), events, cf.states(events))
    want = cf.export(genuine)
    base = cf.replay(genuine, host)
    yield {"tmp": tmp, "host": host, "other": other, "events": events, "want": want,
           "base": base}
    cf.use_key(host)


def test_the_baseline_jumps_through_this_hosts_states_and_agrees_with_export(lab):
    base, want = lab["base"], lab["want"]
    assert base["jumped"], base["message"]
    assert base["lines"] == want
    # the reference really is a lossy session: retransmits counted, storms matched
    flows = [ln for ln in want if ln["kind"] == "flow"]
    assert sum(int(f["counters"].get("retransmits", 0)) for f in flows) > 10_000
    assert all("retransmission-storm" in f.get("templates", ()) for f in flows)


def _forged(lab, name: str, edit) -> str:
    """A recording whose stored states are edited and then written with the other key."""
    cf.use_key(lab["other"])
    try:
        states = cf.states(lab["events"], edit)
    finally:
        cf.use_key(lab["host"])
    return cf.write(str(lab["tmp"] / name), lab["events"], states)


def _assert_same_conclusion(lab, path: str, extra_s: float = EXTRA_S) -> dict:
    got = cf.replay(path, lab["host"])
    base = lab["base"]
    assert got["lines"] == lab["want"] == cf.export(path)
    assert got["seconds"] <= base["seconds"] + extra_s, (got["seconds"], base["seconds"])
    assert got["rss"] <= base["rss"] + EXTRA_MIB, (got["rss"], base["rss"])
    return got


def test_edited_flows_retransmits_zeroed_and_templates_removed_are_ignored(lab):
    def heal(cp):
        for f in cp.reg.flows.values():
            f.n_retx = 0
            f.templates = ()
            f.episodes = ()
            f.tstate = None
            for m in f.members:
                m.tstate = None

    got = _assert_same_conclusion(lab, _forged(lab, "healed.gewrec", heal))
    assert not got["jumped"]
    assert "not written by this host" in got["message"] or "ignored" in got["message"]


def test_an_invented_match_citing_a_route_lookup_is_not_shown(lab):
    route = lab["events"][cf.ROUTE_EVENT - 1]
    assert route.WhichOneof("body") == "fib"
    tidx = [t.id for t in Engine().templates].index("peer-reset")

    def invent(cp):
        for f in list(cp.reg.flows.values())[:5]:
            ep = Episode()
            ep.tidx, ep.tid, ep.eids, ep.bounds = tidx, "peer-reset", [route.id], [0]
            ep.count, ep.first_t, ep.last_t, ep.sig = 1, route.ktime_ns, route.ktime_ns, None
            ep.occurrences, ep.sock, ep.at_eid, ep.sums = 1, 0, route.id, {}
            f.episodes = list(f.episodes) + [ep]
            f.templates = list(f.templates) + ["peer-reset"]
            cp.reg.pin(route.id, route)

    got = _assert_same_conclusion(lab, _forged(lab, "invented.gewrec", invent))
    assert not any("peer-reset" in str(ln) for ln in got["lines"])


def test_a_recording_from_another_host_concludes_what_its_events_say(lab):
    """Unedited states, but made with another host's key: not used (and not needed)."""
    got = _assert_same_conclusion(lab, _forged(lab, "elsewhere.gewrec", None))
    assert not got["jumped"]


def _old_container(body: bytes, like: bytes) -> bytes:
    """A state in the layout a pickle-based build read: magic, header, zlib(pickle), CRC."""
    h = persist.header(like)
    h["size"] = len(body)
    hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    out = persist.MAGIC + struct.pack("<I", len(hb)) + hb + zlib.compress(body, 1)
    return out + struct.pack("<I", zlib.crc32(out))


def _with_state_at_end(lab, name: str, state: bytes) -> str:
    """The genuine recording with one more stored state, ``state``, at its last stop."""
    cf.use_key(lab["host"])
    states = cf.states(lab["events"])
    states[max(states)] = state
    return cf.write(str(lab["tmp"] / name), lab["events"], states)


_MODEL = (Flow, Member, IfaceContext, Progress, Episode)


@pytest.fixture
def model_classes():
    """Snapshot of the model classes; anything a state set on them is undone afterwards
    (so a failure here cannot poison the tests after it)."""
    before = {c: dict(vars(c)) for c in _MODEL}
    yield before
    for c, attrs in before.items():
        for k in set(vars(c)) - set(attrs):
            delattr(c, k)
        for k, v in attrs.items():
            if vars(c).get(k) is not v:
                setattr(c, k, v)


def test_a_state_cannot_set_attributes_on_the_model_classes(lab, model_classes):
    """The pickle BUILD opcode on a class sets class attributes; a typed encoding has no
    way to name a class, and an unauthenticated state is not even decoded."""
    from gewtui.debugger import commands
    from gewtui.debugger.core import Debugger
    from gewtui.debugger.view_builder import ViewBuilder
    from gewtui.debugger.sources import ReplaySource
    from gewtui.recording.export import json_line

    like = next(iter(cf.states(lab["events"][:cf.EVERY + 1]).values()))
    payload = (b"\x80\x04cgewtui.model.entities\nFlow\n"
               b"N}(\x8c\x0cgew_injectedK\x01\x8c\x04liveK\x00u\x86b"
               b"cgewtui.model.matcher\nEpisode\n"
               b"N}\x8c\x05cloneNs\x86b0.")
    path = _with_state_at_end(lab, "inject.gewrec", _old_container(payload, like))
    d = Debugger(ReplaySource(path))
    d.stored.leap_min = 100
    ctx = commands.Context(d, ViewBuilder(d))
    commands.execute(ctx, "goto end")
    d.settle()
    after = {c: dict(vars(c)) for c in _MODEL}
    assert after == model_classes, "a stored state changed a model class"
    lines = [json_line("flow", f) for f in d.engine.flows()]
    lines += [json_line("reason", d.engine.chain(f.flow_id)) for f in d.engine.flows()]
    assert [json.loads(ln) for ln in lines] == lab["want"]


def test_a_memory_bomb_state_is_bounded(lab):
    """8M one-byte pickle opcodes that each make a new dict (about 0.5 GiB as objects),
    padded so the ratio of inflated to stored size looks ordinary."""
    like = next(iter(cf.states(lab["events"][:cf.EVERY + 1]).values()))
    k = 8_000_000
    bomb = b"\x80\x04(" + b"}" * k + b"l." + os.urandom(k // 60)
    _assert_same_conclusion(lab, _with_state_at_end(lab, "membomb.gewrec", _old_container(bomb, like)))


def _old_body_with(cp, slot: str, items: bytes) -> bytes:
    """The pickle a pickle-based build stored for ``cp``, with registry slot ``slot``
    replaced by a dict built from ``items`` (pickle opcodes of key/value pairs): the dict
    is built by the loader only, never by this test."""
    from gewtui.model.flows import Registry

    sentinel = "gew-sentinel-" + slot
    body = {k: getattr(cp.reg, k) for k in Registry.__slots__ if k not in ("matcher", "ring")}
    body["terminated"] = list(body["terminated"])
    body[slot] = sentinel
    ring = [ev.SerializeToString(deterministic=True) if ev is not None else None
            for ev in cp.reg.ring]
    raw = pickle.dumps((body, ring, {}), protocol=5)
    out, last = bytearray(), 0
    for op, arg, pos in pickletools.genops(raw):
        if op.name == "FRAME":                    # frames are optional: drop them
            out += raw[last:pos]
            last = pos + 9
        elif arg == sentinel:
            out += raw[last:pos] + b"}(" + items + b"u"
            last = pos + 2 + len(sentinel)
    return bytes(out + raw[last:])


def _long(x: int) -> bytes:
    b = pickle.encode_long(x)
    return b"\x8a" + bytes([len(b)]) + b


def test_a_hash_collision_bomb_state_is_bounded(lab):
    """40,000 listener keys sharing one hash: building that dict is quadratic."""
    keys = _colliding_pairs(40_000)
    eng = Engine(session_id=cf.SID)
    for ev in lab["events"][:cf.EVERY]:
        eng.feed(ev)
    cp = eng.checkpoint()
    fid = _long(next(iter(cp.reg.flows)))
    items = b"".join(_long(a) + _long(b) + b"\x86" + fid for a, b in keys)
    like = next(iter(cf.states(lab["events"][:cf.EVERY + 1]).values()))
    state = _old_container(_old_body_with(cp, "listeners", items), like)
    states = {cf.EVERY: state}
    path = cf.write(str(lab["tmp"] / "hashbomb.gewrec"), lab["events"], states)
    _assert_same_conclusion(lab, path, extra_s=5.0)


def test_false_checkpoint_heads_do_not_make_the_scan_quadratic(lab):
    """4 MiB of false checkpoint heads between two events: each is a marker, a small
    length and the checkpoint tag, with a wrong checksum."""
    src = _with_state_at_end(lab, "heads-src.gewrec", cf.states(lab["events"])[cf.EVERY])
    with open_recording(src) as r:
        offs = [off for off, _ in r.frames()]
    cut = offs[len(offs) // 2]
    unit = b"\xf7GW\x1e" + b"\x03\x2a\x00\x00" + b"\x00\x00\x00\x00"
    data = Path(src).read_bytes()
    path = lab["tmp"] / "heads.gewrec"
    path.write_bytes(data[:cut] + unit * ((4 << 20) // len(unit)) + data[cut:])
    _assert_same_conclusion(lab, str(path))
