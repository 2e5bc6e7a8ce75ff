"""Engine checkpoints as bytes: what a recording stores so a replay can start mid-file.

Place in the pipeline: whoever folds a session's events (the debugger's head engine on a
live session, ``gew recording index`` offline) turns an ``Engine.checkpoint()`` into bytes
with ``dumps``; the debugger turns them back with ``loads`` and ``Engine.restore`` and folds
only the events after it. A restored engine is indistinguishable from one that folded the
same events (tests/test_persist.py folds, persists at several points, restores, folds on
and compares every flow and chain with a straight fold).

The bytes::

    MAGIC (8) | header length (u32 LE) | header (JSON) | zlib(EngineState) | HMAC-SHA256 (32)

The header names the state format (``MODEL_ID``: this module's version and a fingerprint of
the schema of the model's slots, so a state made by a build whose classes differ is
refused, never misread), the template set's digest, the engine's configuration, the
session id and the position. The body is an ``EngineState`` message
(proto/gewyvern/v1/engine_state.proto): the registry encoded slot by slot by its schema
(gewtui.model.state_schema), the window of recent events as serialized events and the
interventions as records. The compiled matcher is rebuilt from the templates.

A stored state counts only if it was written by this host's gew: the HMAC, under the
root-only key of gewtui.model.state_key, covers every byte before it and is checked before
anything else is read. A state from another host, another user or an editor, or any state
read without root, is refused (``StateError``) and the caller folds the events, so a
recording concludes exactly what its events say. What follows the check is bounded all the
same (stored and inflated size, value count, string length, depth, dict-key hashes) and
type-checked field by field, and the registry's internal references are checked, so a
state that loads cannot fail a later fold. Same state in, same bytes out: ``dumps`` is
deterministic.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from typing import Any

from google.protobuf.message import DecodeError

from gewtui.errors import GewError
from gewtui.model import state_key, state_schema
from gewtui.model.engine import Checkpoint
from gewtui.model.entities import DIVERGED, EMERGED, TERMINATED, Flow
from gewtui.model.flows import Registry
from gewtui.model.matcher import Matcher, Progress
from gewtui.model.snapshots import flow_summary
from gewtui.model.state_codec import StateError
from gewtui.model.templates import TemplateSet
from gewtui.pb import engine_state_pb2, events_pb2, intervention_pb2

__all__ = ["StateError", "MODEL_ID", "dumps", "loads", "header", "template_digest", "engine_view"]

MAGIC = b"GEWSTATE"
# 3: inventoried members held under flows.INVENTORIED + cookie (a state of 2 held them under the
# bare cookie, which socket ids can equal): older checkpoints are ignored and the events folded
FORMAT = 3
_U32 = struct.Struct("<I")
MAC_BYTES = 32
MAX_HEADER = 1 << 12
# Bounds on what a state may cost to read. A state of 2,000 live and 10,000 ended flows
# stores about 1.5 MiB and inflates about 4x; a state beyond these is not written either.
MAX_STORED = 64 << 20          # bytes of the compressed body
MAX_INFLATED = 96 << 20        # bytes it inflates to...
MAX_RATIO = 32                 # ...and at most this many times its stored size (or 4 MiB)
MAX_VALUES = 8_000_000         # values in the registry's encoding (opcodes)
MAX_RING = 1 << 20             # slots of the window of recent events
MAX_EVENT = 1 << 20            # one serialized event


def _fingerprint() -> str:
    h = hashlib.sha256()
    h.update(state_schema.fingerprint().encode())
    h.update(f"Checkpoint:{','.join(Checkpoint.__slots__)}".encode())
    return h.hexdigest()[:16]


MODEL_ID = f"gew-engine-state/{FORMAT} {_fingerprint()}"


def template_digest(templates: TemplateSet) -> str:
    """A digest of everything in a template set that decides how events fold (ids, patterns,
    wording). Two sets with one digest fold alike; where a template came from does not count."""
    h = hashlib.sha256()
    for t in templates:
        p = t.pattern
        steps = [(s.count, s.window_ns,
                  [(a.kind, [(c.field, c.op, _canon(c.value)) for c in a.conds]) for a in s.alts])
                 for s in p.steps]
        item = [t.id, t.title, t.classification, t.severity, list(t.allows), t.text,
                steps, p.same_socket, p.within_ns, p.scope]
        h.update(repr(item).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def _canon(v: Any) -> Any:
    if isinstance(v, (set, frozenset, list, tuple)):
        return sorted((_canon(x) for x in v), key=repr)
    return v


# ---- writing ----------------------------------------------------------------------------------

def engine_view(engine: Any) -> Checkpoint:
    """An engine's current state as a Checkpoint *without copying it*, for ``dumps`` only:
    it shares the engine's live objects, so dump it before the engine folds again (saves
    the copy ``Engine.checkpoint()`` makes)."""
    reg = engine._reg
    return Checkpoint(reg, engine.templates, engine.session_id, engine._interventions,
                      engine._config, reg.n_events)


def _mac(key: bytes, data: bytes | memoryview) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def dumps(cp: Checkpoint) -> bytes:
    """The bytes of an engine checkpoint (``Engine.checkpoint()``), authenticated with this
    host's key (created on first use). GewError when there is no key to write with (not
    root, or /etc/gewyvern fails its checks) or the state exceeds what ``loads`` reads."""
    key = state_key.state_key(create=True)
    reg = cp.reg
    msg = engine_state_pb2.EngineState(registry=state_schema.encode(reg))
    msg.ring.extend(ev.SerializeToString(deterministic=True) if ev is not None else b""
                    for ev in reg.ring)
    for fid, items in cp.interventions.items():
        for rec, ids in items:
            msg.interventions.add(flow_id=fid, record=rec.SerializeToString(deterministic=True),
                                  event_ids=ids)
    payload = msg.SerializeToString(deterministic=True)
    if len(payload) > MAX_INFLATED or len(msg.registry.shape) > MAX_VALUES:
        raise StateError(f"engine state: {len(payload) >> 20} MiB, more than a stored state may hold")
    header = json.dumps({
        "model": MODEL_ID, "templates": template_digest(cp.templates),
        "config": list(cp.config), "session_id": cp.session_id,
        "event_index": cp.event_index, "event_id": reg.last_eid,
        "size": len(payload),
    }, sort_keys=True, separators=(",", ":")).encode()
    out = MAGIC + _U32.pack(len(header)) + header + zlib.compress(payload, 1)
    if len(out) > MAX_STORED:
        raise StateError(f"engine state: {len(out) >> 20} MiB stored, more than a state may be")
    return out + _mac(key, out)


def header(data: bytes) -> dict:
    """The header of persisted state bytes (not authenticated: for display and tests)."""
    if data[:len(MAGIC)] != MAGIC:
        raise StateError("engine state: not a gew engine state (bad magic)")
    if len(data) < len(MAGIC) + 4:
        raise StateError("engine state: truncated")
    n = _U32.unpack_from(data, len(MAGIC))[0]
    start = len(MAGIC) + 4
    if n > MAX_HEADER or start + n > len(data):
        raise StateError("engine state: header length out of range")
    try:
        h = json.loads(data[start:start + n])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise StateError("engine state: header is not valid JSON") from None
    if not isinstance(h, dict):
        raise StateError("engine state: header is not an object")
    return h


# ---- reading ----------------------------------------------------------------------------------

def authenticate(data: bytes) -> None:
    """Raise StateError unless ``data`` was written by this host's gew (its HMAC checks)."""
    if len(data) < len(MAGIC) + 4 + MAC_BYTES or data[:len(MAGIC)] != MAGIC:
        raise StateError("engine state: not a gew engine state (bad magic)")
    try:
        key = state_key.state_key()
    except GewError as e:
        raise StateError(f"engine state: not authenticated ({e.message})") from None
    view = memoryview(data)
    if not hmac.compare_digest(_mac(key, view[:-MAC_BYTES]), bytes(view[-MAC_BYTES:])):
        raise StateError("engine state: not written by this host's gew (authentication "
                         "failed): ignored")


_MATCHERS: dict[int, tuple[TemplateSet, Matcher]] = {}


def _matcher(templates: TemplateSet) -> Matcher:
    # One compiled matcher per template set, shared like Engine.restore shares it.
    got = _MATCHERS.get(id(templates))
    if got is None or got[0] is not templates:
        if len(_MATCHERS) > 8:
            _MATCHERS.clear()
        got = _MATCHERS[id(templates)] = (templates, Matcher(templates))
    return got[1]


def loads(data: bytes, templates: TemplateSet, *, config: tuple | None = None,
          session_id: str | None = None) -> Checkpoint:
    """A Checkpoint from ``dumps`` bytes, for ``Engine.restore``. ``templates`` must be the set
    the state was folded with (by digest); ``config`` and ``session_id``, when given, must match
    the engine the caller would otherwise build. Raises StateError (and only that)."""
    if type(data) is not bytes:
        raise StateError("engine state: not bytes")
    authenticate(data)
    h = header(data)
    if h.get("model") != MODEL_ID:
        raise StateError(f"engine state: made by another model layout ({str(h.get('model'))[:80]!r}, "
                         f"this build reads {MODEL_ID!r})")
    if h.get("templates") != template_digest(templates):
        raise StateError("engine state: folded with another template set")
    cfg = h.get("config")
    if not (isinstance(cfg, list) and len(cfg) == 3 and all(type(x) is int and x >= 0 for x in cfg)
            and 1 <= cfg[2] <= MAX_RING):
        raise StateError("engine state: bad engine configuration")
    if config is not None and tuple(cfg) != tuple(config):
        raise StateError(f"engine state: engine configured {tuple(cfg)}, expected {tuple(config)}")
    sid = h.get("session_id")
    if type(sid) is not str or (session_id is not None and sid != session_id):
        raise StateError("engine state: from another session")
    size, index, eid = h.get("size"), h.get("event_index"), h.get("event_id")
    if type(index) is not int or index < 0 or type(eid) is not int or eid < 0:
        raise StateError("engine state: bad position in its header")
    start = len(MAGIC) + 4 + _U32.unpack_from(data, len(MAGIC))[0]
    stored = len(data) - start - MAC_BYTES
    if type(size) is not int or not 0 < size <= min(MAX_INFLATED, max(4 << 20, MAX_RATIO * stored)) \
            or stored > MAX_STORED:
        raise StateError("engine state: larger than a stored state may be")
    z = zlib.decompressobj()
    try:
        payload = z.decompress(memoryview(data)[start:-MAC_BYTES], size + 1)
    except zlib.error as e:
        raise StateError(f"engine state: damaged ({e})") from None
    if len(payload) != size or not z.eof or z.unconsumed_tail:
        raise StateError("engine state: damaged (size does not match its header)")
    try:
        msg = engine_state_pb2.EngineState.FromString(payload)
    except (DecodeError, RecursionError, ValueError):
        raise StateError("engine state: undecodable") from None
    del payload
    max_terminated, silence_ns, recent = cfg
    reg = state_schema.decode(msg.registry, MAX_VALUES)
    reg.matcher = _matcher(templates)
    reg.ring = _ring(msg.ring, recent)
    if reg.silence_ns != silence_ns or reg.max_terminated != max_terminated \
            or reg.last_eid != eid or reg.ring_size != recent or reg.n_events != index:
        raise StateError("engine state: body does not match its header")
    _check(reg)
    return Checkpoint(reg, templates, sid, _interventions(msg.interventions), tuple(cfg), index)


def _ring(raw: Any, recent: int) -> list:
    if len(raw) != recent:
        raise StateError("engine state: window of recent events has the wrong size")
    parse = events_pb2.Event.FromString
    out: list = []
    try:
        for b in raw:
            if len(b) > MAX_EVENT:
                raise StateError("engine state: an event larger than a record")
            out.append(parse(b) if b else None)
    except (DecodeError, RecursionError, ValueError):
        raise StateError("engine state: undecodable event in its window of recent events") from None
    for i, ev in enumerate(out):
        if ev is not None and ev.id % recent != i:
            raise StateError("engine state: an event in the wrong slot of its window")
    return out


def _bad(what: str) -> StateError:
    return StateError(f"engine state: {what}")


def _check(reg: Registry) -> None:
    """The registry's references between its parts hold, so no later fold can fail on
    them: every index names a flow or socket that is there, every open match fits the
    compiled templates (a list of the right length, a slot and step that exist)."""
    flows = reg.flows
    compiled = reg.matcher.compiled
    groups = {True: {c.slot: c for c in compiled if c.same},
              False: {c.slot: c for c in compiled if not c.same}}
    top = 0
    for fid, f in flows.items():
        if f.fid != fid or not EMERGED <= f.phase <= TERMINATED or fid <= 0:
            raise _bad(f"flow {fid} is not what its entry names")
        top = max(top, fid)
        _tstate(f.tstate, groups[False])
        for m in f.members:
            _tstate(m.tstate, groups[True])
        for e in f.episodes:
            if not 0 <= e.tidx < len(compiled) or compiled[e.tidx].tid != e.tid:
                raise _bad(f"flow {fid} holds a match of no template")
        if f.parent and f.parent not in flows and f.parent >= f.fid:
            raise _bad(f"flow {fid} has a parent from its future")
    if reg.next_fid <= top:
        raise _bad("flow numbering runs backwards")
    if any(v not in flows for v in reg.keys.values()) or \
            any(v not in flows for v in reg.listeners.values()):
        raise _bad("an identity index names a flow that is not there")
    for k, fid in reg.keys.items():
        if flows[fid].key != k or flows[fid].phase >= DIVERGED:
            raise _bad("an identity index names the wrong flow")
    for v in reg.peers.values():
        for fid in (v if v.__class__ is list else (v,)):
            if fid not in flows:
                raise _bad("a peer index names a flow that is not there")
    for d in reg.paths.values():
        if any(fid not in flows for fid in d):
            raise _bad("a path index names a flow that is not there")
    for sock, m in reg.socks.items():
        if m.sock != sock or not m.indexed:
            raise _bad("a socket index names the wrong socket")
    for k, v in reg.tuples.items():
        for m in (v if v.__class__ is list else (v,)):
            if m.tkey != k:
                raise _bad("a tuple index names the wrong socket")
    ev = events_pb2.Event()
    try:
        # Evidence is read back when a chain cites it: every pinned event must parse.
        for raw in reg.pinned.values():
            ev.ParseFromString(raw)
    except (DecodeError, RecursionError, ValueError):
        raise _bad("undecodable pinned evidence") from None
    try:
        # Every flow as a listing shows it (protobuf checks each field's range on assignment).
        for f in flows.values():
            flow_summary(f)
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as e:
        raise _bad(f"a flow does not hold what a flow holds ({type(e).__name__})") from None


def _tstate(st: Any, group: dict) -> None:
    if st is None:
        return
    n = len(group)
    if st.__class__ is list:
        if len(st) != n:
            raise _bad("open matches of the wrong number of templates")
        for i, p in enumerate(st):
            if p is not None:
                _progress(p, group, i)
    else:
        _progress(st, group, st.slot)


def _progress(p: Progress, group: dict, slot: int) -> None:
    c = group.get(slot)
    if c is None or p.slot != slot or not 0 <= p.step < c.nsteps:
        raise _bad("an open match of no template")


def _interventions(raw: Any) -> dict:
    out: dict = {}
    parse = intervention_pb2.InterventionRecord.FromString
    try:
        for it in raw:
            out.setdefault(it.flow_id, []).append((parse(it.record), list(it.event_ids)))
    except (DecodeError, RecursionError, ValueError):
        raise StateError("engine state: undecodable intervention record") from None
    return out
