"""What each slot of the engine's state holds, and the registry encoded by it.

Place in the pipeline: gewtui.model.persist turns the flow registry into a
``RegistryState`` message (proto/gewyvern/v1/engine_state.proto) with ``encode`` and back
with ``decode``; the codec (gewtui.model.state_codec) does the typed, bounded work.
``SCHEMA`` names, for every model class the engine's state holds, the type of each of its
``__slots__``: when a class gains a slot, add one line here for it (tests/test_persist.py
fails until every slot is named, and ``dumps`` refuses a value its slot does not allow).
"""
from __future__ import annotations

from typing import Any

from gewtui.model.entities import Flow, IfaceContext, Member
from gewtui.model.flows import Registry
from gewtui.model.matcher import Episode, Progress
from gewtui.model.state_codec import (INT, NONE, NONE_, OBJ, REF, SCALAR, SCHEMA, B, I, Map, Obj,
                                      S, Seq, Spec, StateError, Tup, Union, Y, _bad, _R, _W)
from gewtui.pb import engine_state_pb2

__all__ = ["SCHEMA", "StateError", "encode", "decode", "uncovered", "fingerprint"]


class _Owner(Spec):
    """A socket's flow: not stored, it is the flow whose members list the socket."""

    name = role = "owner"

    def enc(self, v, w):
        if v is not w.flow:
            raise StateError("engine state: a socket outside the flow that lists it")


class _EpRef(Spec):
    """An open match's episode: its index in its flow's episodes, or None."""

    ops, name, role = frozenset({NONE, INT}), "episode-ref", "episode"

    def enc(self, v, w):
        eps = w.flow.episodes if w.flow is not None else ()
        for i, e in enumerate(eps):
            if e is v:
                w.shape.append(INT)
                w.ints.append(i)
                return
        w.shape.append(NONE)       # as Flow.clone does: an episode the flow no longer has

    def dec(self, r):
        op = r.op()
        if op == NONE:
            return None
        if op != INT or r.flow is None:
            raise _bad("an episode index")
        return r.int()      # resolved by the enclosing flow (Obj.dec)


class _MRef(Spec):
    """An index entry's socket: (flow id, position in that flow's members)."""

    ops, name, cls = frozenset({REF}), "member-ref", Member

    def enc(self, v, w):
        pos = w.mpos.get(id(v)) if v.__class__ is Member else None
        if pos is None:
            raise StateError("engine state: an index names a socket no flow lists")
        w.shape.append(REF)
        w.ints += pos

    def dec(self, r):
        if r.op() != REF:
            raise _bad("a socket reference")
        fid, i = r.int(), r.int()
        f = r.flows.get(fid) if r.flows is not None else None
        if f is None or not 0 <= i < len(f.members):
            raise StateError("engine state: an index names a socket no flow lists")
        return f.members[i]


class _Skip(Spec):
    """A slot not stored here (persist fills it: the compiled templates, the event window)."""

    name = "skip"


OWNER, EPREF, MREF, SKIP = _Owner(), _EpRef(), _MRef(), _Skip()

KEY = Tup(S, I, I, I, Y, I, Y, I)          # gewtui.model.identity: role, netns, family, ...
TKEY = Tup(Y, I, Y, I)                     # a socket's (saddr, sport, daddr, dport)
HOP = Tup(I, S, Y, I, I)                   # (event id, device, gateway, table, error)
ATTR = Tup(I, I, S, I, I, I, I)            # (pid, tgid, comm, cgroup, netns, source, uid)
TRANS = Union(I, Tup(I, I, S, S, S, I))    # a pinned state event, or (id, t, what, from, to, extra)
SIG = Union(NONE_, Map(I, Map(S, SCALAR)))
PROGRESS = Union(NONE_, Obj(Progress))
TSTATE = Union(NONE_, Obj(Progress), Seq(PROGRESS, "l"))
IDT = Tup(I, I)

# For every class the engine's state holds: each slot and what it holds, in slot order.
SCHEMA.update({
    Registry: (
        ("matcher", SKIP), ("silence_ns", I), ("max_terminated", I), ("ring_size", I),
        ("ring", SKIP), ("flows", Map(I, Obj(Flow))), ("keys", Map(KEY, I)),
        ("socks", Map(I, MREF)), ("tuples", Map(TKEY, Union(MREF, Seq(MREF, "l")))),
        ("listeners", Map(IDT, I)), ("peers", Map(Y, Union(I, Seq(I, "l")))),
        ("paths", Map(Tup(I, S), Map(I, NONE_))), ("routes", Map(Tup(I, Y), HOP)),
        ("ifctx", Map(Tup(I, S), Obj(IfaceContext))), ("pending", Map(I, Seq(I, "l"))),
        ("idle", Seq(IDT, "l")), ("terminated", Seq(I, "d")), ("pinned", Map(I, Y)),
        ("refs", Map(I, I)), ("lost", Seq(Tup(I, I, I, I, S), "l")), ("context", Seq(I, "l")),
        ("next_fid", I), ("live_count", I), ("n_events", I), ("evicted", I),
        ("lost_records", I), ("complete", B), ("unattributed", I), ("last_eid", I),
        ("now", I), ("last_lost_t", I), ("attrs", Map(ATTR, ATTR)),
        # inventory: each namespace's port range, its counter readings, cgroup names
        ("port_ranges", Map(I, IDT)), ("ns_facts", Map(I, Seq(Tup(I, I, S, I), "l"))),
        ("cgroups", Map(I, Tup(S, S, S, I))),
    ),
    Flow: (
        ("fid", I), ("key", KEY), ("phase", I), ("parent", I), ("children", Seq(I, "el")),
        ("members", Seq(Obj(Member), "el")), ("open", I), ("path", Seq(HOP, "t")),
        ("procs", Seq(Tup(I, ATTR, S), "t")), ("n_events", I), ("n_retx", I),
        ("n_rst_sent", I), ("n_rst_recv", I), ("n_drops", I), ("n_segments", I),
        ("n_bytes", I), ("n_zw", I), ("n_conns", I), ("first_eid", I), ("last_eid", I),
        ("first_t", I), ("last_t", I), ("tcp_state", I), ("trans", Seq(TRANS, "el")),
        ("trans_elided", I), ("evolved", I), ("templates", Seq(S, "el")),
        ("episodes", Seq(Obj(Episode), "el")), ("tstate", TSTATE), ("idle_since", I),
        ("end_reason", S), ("end_t", I), ("dev", Union(NONE_, S)), ("members_elided", I),
        ("rtt", Seq(I, "el")), ("clat", Seq(I, "el")),
    ),
    Member: (
        ("sock", I), ("flow", OWNER), ("tkey", TKEY), ("state", I), ("first_eid", I),
        ("last_eid", I), ("closed", B), ("rst_eid", I), ("tstate", TSTATE), ("indexed", B),
    ),
    Progress: (
        ("step", I), ("eids", Seq(I, "t")), ("bounds", Seq(I, "t")), ("t0", I),
        ("win", Union(NONE_, Seq(IDT, "l"))), ("ep", EPREF), ("sig", SIG), ("slot", I),
    ),
    Episode: (
        ("tidx", I), ("tid", S), ("eids", Seq(I, "l")), ("bounds", Seq(I, "l")), ("count", I),
        ("first_t", I), ("last_t", I), ("sig", SIG), ("occurrences", I), ("sock", I),
        ("at_eid", I), ("sums", Map(S, I)),
    ),
    IfaceContext: (
        ("netns", I), ("ifname", S), ("notable", Seq(IDT, "l")), ("counts", Map(S, I)),
    ),
})


def uncovered() -> list[str]:
    """Slots of the schema's classes that the schema does not name (or names wrongly):
    empty when every slot of the engine's state is covered."""
    out = []
    for cls, fields in SCHEMA.items():
        names = tuple(n for n, _ in fields)
        if names != tuple(cls.__slots__):
            out.append(f"{cls.__name__}: slots {cls.__slots__}, schema {names}")
    return out


def fingerprint() -> str:
    """The schema as text (slot names and types): part of the state format's identity."""
    return ";".join(f"{c.__module__}.{c.__qualname__}:" + ",".join(f"{n}={s!r}" for n, s in f)
                    for c, f in SCHEMA.items())


# ---- the registry ----------------------------------------------------------------------------

def encode(reg: Registry) -> Any:
    """A RegistryState of a registry (its matcher and event window excepted). StateError if
    a slot holds what the schema does not allow (the state is then not stored)."""
    w = _W()
    for fid, f in reg.flows.items():
        for i, m in enumerate(f.members):
            w.mpos[id(m)] = (fid, i)
    w.shape.append(OBJ)
    for name, spec in SCHEMA[Registry]:
        if spec is not SKIP:
            spec.enc(getattr(reg, name), w)
    return engine_state_pb2.RegistryState(shape=bytes(w.shape), ints=w.ints, big=w.big,
                                          heap=bytes(w.heap))


def decode(msg: Any, max_values: int) -> Registry:
    """A fresh Registry (``matcher`` and ``ring`` unset) from a RegistryState. StateError."""
    if len(msg.shape) > max_values or len(msg.ints) > 2 * len(msg.shape) \
            or len(msg.big) > len(msg.shape):
        raise StateError("engine state: more values than a state may hold")
    r = _R(msg)
    try:
        if r.op() != OBJ:
            raise _bad("a registry")
        reg = object.__new__(Registry)
        for name, spec in SCHEMA[Registry]:
            if spec is SKIP:
                continue
            v = spec.dec(r)
            setattr(reg, name, v)
            if name == "flows":
                r.flows = v
        if r.si != len(r.shape) or r.ii != len(r.ints) or r.bi != len(r.big) \
                or r.hi != len(r.heap):
            raise StateError("engine state: values left over after the registry")
    except StateError:
        raise
    except (IndexError, TypeError, ValueError, OverflowError, RecursionError):
        raise StateError("engine state: truncated or malformed values") from None
    return reg
