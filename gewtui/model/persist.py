"""Engine checkpoints as bytes: what a recording stores so a replay can start mid-file.

Place in the pipeline: whoever folds a session's events (the debugger's head engine on a
live session, ``gew recording index`` offline) turns an ``Engine.checkpoint()`` into bytes
with ``dumps``; the debugger turns them back with ``loads`` and ``Engine.restore`` and folds
only the events after it. A restored engine is indistinguishable from one that folded the
same events (tests/test_persist.py folds, persists at several points, restores, folds on
and compares every flow and chain with a straight fold).

The bytes::

    MAGIC (8) | header length (u32 LE) | header (JSON) | zlib(pickle(body)) | crc32 (u32 LE)

(the CRC covers everything before it: a state stands on its own, in a recording or not)
The header names the state format (``MODEL_ID``: this module's version and a fingerprint of
the model classes' slot layouts, so a state made by a build whose classes differ is refused,
never misread), the template set's digest, the engine's configuration, the session id and
the position. The body is the registry's slots (the compiled matcher is rebuilt from the
templates, the window of recent events travels as serialized events, the deque as a list).

Recordings come from boxes under investigation, so a state is untrusted input. ``loads``
unpickles with ``find_class`` limited to the plain model classes below, whose constructors
(if a hostile stream calls them) only make small empty objects: no other callable, module
or builtin can be reached, so loading cannot run code. Decompression is capped. Anything
unknown, damaged or from another layout raises ``StateError`` (one line); the caller then
folds from the start. Same state in, same bytes out: ``dumps`` is deterministic.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zlib
from collections import deque
from typing import Any

from gewtui.errors import RecordingError
from gewtui.model.engine import Checkpoint
from gewtui.model.entities import Flow, IfaceContext, Member
from gewtui.model.flows import Registry
from gewtui.model.matcher import Episode, Matcher, Progress
from gewtui.model.snapshots import flow_summary
from gewtui.model.templates import TemplateSet
from gewtui.pb import events_pb2, intervention_pb2

MAGIC = b"GEWSTATE"
FORMAT = 1
PROTOCOL = 5
# Registry slots that are not state: the compiled templates (rebuilt), and the ring of
# recent events (carried as bytes).
_NOT_PICKLED = ("matcher", "ring")
# Every class a state may contain. Their constructors take at most two plain values and
# allocate nothing in proportion to them, so even a hostile REDUCE of one is inert. The
# registry itself is not among them (its constructor allocates by an argument): it is
# carried as a dict of its slots.
_CLASSES = (Flow, Member, IfaceContext, Progress, Episode)
_ALLOWED = {(c.__module__, c.__qualname__): c for c in _CLASSES}
_U32 = struct.Struct("<I")
MAX_HEADER = 1 << 16
# A state inflates about 4x here; a hostile one must not inflate without bound.
MAX_RATIO = 64
MAX_STATE = 1 << 30


class StateError(RecordingError):
    """A persisted engine state that cannot be used (one line; fold from the start)."""


def _fingerprint() -> str:
    h = hashlib.sha256()
    for c in (Registry, *_CLASSES, Checkpoint):
        h.update(f"{c.__module__}.{c.__qualname__}:{','.join(c.__slots__)};".encode())
    h.update(f"pickle{PROTOCOL}".encode())
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


def dumps(cp: Checkpoint) -> bytes:
    """The bytes of an engine checkpoint (``Engine.checkpoint()``); see the module docstring."""
    reg = cp.reg
    body = {k: getattr(reg, k) for k in Registry.__slots__ if k not in _NOT_PICKLED}
    body["terminated"] = list(reg.terminated)
    ring = [ev.SerializeToString(deterministic=True) if ev is not None else None
            for ev in reg.ring]
    interventions = {fid: [(rec.SerializeToString(deterministic=True), list(ids))
                           for rec, ids in items]
                     for fid, items in cp.interventions.items()}
    payload = pickle.dumps((body, ring, interventions), protocol=PROTOCOL)
    header = json.dumps({
        "model": MODEL_ID, "templates": template_digest(cp.templates),
        "config": list(cp.config), "session_id": cp.session_id,
        "event_index": cp.event_index, "event_id": reg.last_eid,
        "size": len(payload),
    }, sort_keys=True, separators=(",", ":")).encode()
    out = MAGIC + _U32.pack(len(header)) + header + zlib.compress(payload, 1)
    return out + _U32.pack(zlib.crc32(out))


def header(data: bytes) -> dict:
    """The header of persisted state bytes, without unpickling anything."""
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
    except (ValueError, UnicodeDecodeError):
        raise StateError("engine state: header is not valid JSON") from None
    if not isinstance(h, dict):
        raise StateError("engine state: header is not an object")
    return h


# ---- reading ----------------------------------------------------------------------------------

class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        c = _ALLOWED.get((module, name))
        if c is None:
            raise StateError(f"engine state: refers to {module}.{name}, which a state never holds")
        return c

    def persistent_load(self, pid: Any) -> Any:
        raise StateError("engine state: persistent references are not allowed")


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
    the engine the caller would otherwise build. Raises StateError."""
    if len(data) < len(MAGIC) + 8 or zlib.crc32(memoryview(data)[:-4]) != _U32.unpack_from(data, len(data) - 4)[0]:
        raise StateError("engine state: damaged or truncated (checksum mismatch)"
                         if data[:len(MAGIC)] == MAGIC else "engine state: not a gew engine state (bad magic)")
    h = header(data)
    if h.get("model") != MODEL_ID:
        raise StateError(f"engine state: made by another model layout ({h.get('model')!r}, "
                         f"this build reads {MODEL_ID!r})")
    if h.get("templates") != template_digest(templates):
        raise StateError("engine state: folded with another template set")
    cfg = h.get("config")
    if not (isinstance(cfg, list) and len(cfg) == 3 and all(type(x) is int and x >= 0 for x in cfg)):
        raise StateError("engine state: bad engine configuration")
    if config is not None and tuple(cfg) != tuple(config):
        raise StateError(f"engine state: engine configured {tuple(cfg)}, expected {tuple(config)}")
    if session_id is not None and h.get("session_id") != session_id:
        raise StateError("engine state: from another session")
    size, index = h.get("size"), h.get("event_index")
    if type(size) is not int or not 0 < size <= MAX_STATE or type(index) is not int or index < 0:
        raise StateError("engine state: bad size or position in its header")
    start = len(MAGIC) + 4 + _U32.unpack_from(data, len(MAGIC))[0]
    z = zlib.decompressobj()
    try:
        payload = z.decompress(memoryview(data)[start:-4], min(size, MAX_RATIO * (len(data) - start - 4)) + 1)
    except zlib.error as e:
        raise StateError(f"engine state: damaged ({e})") from None
    if len(payload) != size or not z.eof or z.unconsumed_tail:
        raise StateError("engine state: damaged (size does not match its header)")
    try:
        body, ring, interventions = _Unpickler(io.BytesIO(payload)).load()
    except StateError:
        raise
    except Exception as e:    # any malformed stream: a one-line refusal, never a traceback
        raise StateError(f"engine state: undecodable ({type(e).__name__})") from None
    max_terminated, silence_ns, recent = cfg
    reg = _registry(body, ring, recent)
    reg.matcher = _matcher(templates)
    if reg.silence_ns != silence_ns or reg.max_terminated != max_terminated or reg.last_eid != h.get("event_id"):
        raise StateError("engine state: body does not match its header")
    return Checkpoint(reg, templates, h.get("session_id", ""), _interventions(interventions),
                      tuple(cfg), index)


def _registry(body: Any, ring: Any, recent: int) -> Registry:
    """Rebuild the registry from its slot dict, checking each slot has the type a fresh
    registry gives it (a hostile state must fail here, not in the middle of a fold)."""
    fresh = Registry(None, silence_ns=0, max_terminated=0, recent_events=1)  # type: ignore[arg-type]
    want = set(Registry.__slots__) - set(_NOT_PICKLED)
    if type(body) is not dict or set(body) != want:
        raise StateError("engine state: registry slots do not match this build")
    if type(ring) is not list or len(ring) != recent:
        raise StateError("engine state: window of recent events has the wrong size")
    reg = Registry.__new__(Registry)
    for k, v in body.items():
        ref = getattr(fresh, k)
        if k == "terminated":
            if type(v) is not list:
                raise StateError("engine state: registry slot terminated has the wrong type")
            v = deque(v)
        elif type(v) is not type(ref) and not (type(ref) is int and type(v) is bool) \
                and not (type(ref) is bool and type(v) is int):
            raise StateError(f"engine state: registry slot {k} has the wrong type")
        setattr(reg, k, v)
    for fid, f in reg.flows.items():
        if type(fid) is not int or type(f) is not Flow:
            raise StateError("engine state: a flow is not a flow")
    for m in reg.socks.values():
        if type(m) is not Member:
            raise StateError("engine state: a socket is not a socket")
    _check_objects(body)
    try:
        # Every flow as a listing shows it: protobuf checks each field's type on assignment,
        # so a flow whose counters, addresses or templates are of the wrong kind fails here.
        for f in reg.flows.values():
            flow_summary(f)
    except Exception as e:
        raise StateError(f"engine state: a flow does not hold what a flow holds ({type(e).__name__})") from None
    parse = events_pb2.Event.FromString
    try:
        reg.ring = [parse(b) if b is not None else None for b in ring]
    except Exception:
        raise StateError("engine state: undecodable event in its window of recent events") from None
    reg.ring_size = recent
    return reg


def _check_objects(root: Any) -> None:
    """Every model object reachable from the state has all of its slots set (a state whose
    objects lack fields would fail in the middle of a fold instead of here)."""
    seen: set[int] = set()
    todo = [root]
    containers = (dict, list, tuple, set, frozenset, deque)
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        t = type(o)
        if t is dict:
            todo.extend(o.keys())
            todo.extend(o.values())
        elif t in containers:
            todo.extend(o)
        elif t in _CLASSES:
            for slot in t.__slots__:
                try:
                    todo.append(getattr(o, slot))
                except AttributeError:
                    raise StateError(f"engine state: a {t.__name__} without its {slot}") from None


def _interventions(raw: Any) -> dict:
    if type(raw) is not dict:
        raise StateError("engine state: interventions have the wrong type")
    out = {}
    parse = intervention_pb2.InterventionRecord.FromString
    try:
        for fid, items in raw.items():
            out[int(fid)] = [(parse(b), [int(i) for i in ids]) for b, ids in items]
    except StateError:
        raise
    except Exception:
        raise StateError("engine state: undecodable intervention record") from None
    return out
