"""The typed, bounded codec of engine states: plain values and model objects as opcodes.

Place in the pipeline: gewtui.model.state_schema declares, with the ``Spec`` types here,
what each slot of each model class holds (``SCHEMA``); it encodes the flow registry into a
``RegistryState`` message (proto/gewyvern/v1/engine_state.proto) and decodes it back with
these specs, for gewtui.model.persist. Nothing else reads these bytes.

The encoding is a tree of plain values, not an object graph. Decoding is driven by the
schema: at each place it expects one type, reads one opcode and refuses anything else, so
a state can only contain what the model holds there, and its depth is the schema's. It
builds fresh instances of the schema's classes with ``object.__new__`` and sets their own
slots one by one; nothing reaches a class, a module or a callable. References the model
keeps between its objects are not stored: a socket's flow is the flow that lists it, an
open match's episode is an index in its flow's episodes, an index entry of the registry is
(flow id, member position). Costs are linear in the input: every count is checked against
the opcodes left before anything is built, strings and bytes are capped, and a dict whose
keys' hashes collide more than ``MAX_COLLIDE`` times (ints and tuples hash predictably) is
refused before it is built. Every failure is one ``StateError``.
"""
from __future__ import annotations

from collections import Counter, deque
from typing import Any

from gewtui.errors import RecordingError
from gewtui.model.entities import Flow

MAX_STR = 1 << 16          # one string (texts, names, template ids)
MAX_BYTES = 1 << 20        # one bytes value (addresses, pinned events)
MAX_COLLIDE = 8            # keys of one dict sharing one hash
_I64 = 1 << 63
_U64 = 1 << 64

NONE, FALSE, TRUE, INT, BIG, BYTES, STR, TUPLE, LIST, DICT, OBJ, REF = range(12)

# For every class an engine state holds: each slot and its Spec, in slot order. Filled by
# gewtui.model.state_schema (the one place that says what the model's slots hold).
SCHEMA: dict[type, tuple[tuple[str, "Spec"], ...]] = {}


class StateError(RecordingError):
    """A persisted engine state that cannot be used (one line; fold from the start)."""


class _W:
    """Encoder output: the four streams of a RegistryState."""

    __slots__ = ("shape", "ints", "big", "heap", "flow", "mpos")

    def __init__(self) -> None:
        self.shape = bytearray()
        self.ints: list[int] = []
        self.big: list[int] = []
        self.heap = bytearray()
        self.flow: Any = None          # the flow being written (for episode references)
        self.mpos: dict[int, tuple[int, int]] = {}   # id(member) -> (flow id, position)


class _R:
    """Decoder input and positions."""

    __slots__ = ("shape", "ints", "big", "heap", "si", "ii", "bi", "hi", "flow", "fix", "flows")

    def __init__(self, msg: Any) -> None:
        self.shape = bytes(msg.shape)
        self.ints = list(msg.ints)
        self.big = list(msg.big)
        self.heap = bytes(msg.heap)
        self.si = self.ii = self.bi = self.hi = 0
        self.flow: Any = None
        self.fix: list = []            # (progress, episode index) of the flow being read
        self.flows: dict | None = None

    def op(self) -> int:
        si = self.si
        self.si = si + 1
        return self.shape[si]

    def int(self) -> int:
        ii = self.ii
        self.ii = ii + 1
        return self.ints[ii]

    def count(self, per: int = 1) -> int:
        n = self.int()
        if n < 0 or n * per > len(self.shape) - self.si:
            raise StateError("engine state: a count larger than what follows it")
        return n

    def chunk(self, cap: int) -> bytes:
        n = self.int()
        hi = self.hi
        if n < 0 or n > cap or hi + n > len(self.heap):
            raise StateError("engine state: a string or bytes value out of bounds")
        self.hi = hi + n
        return self.heap[hi:hi + n]


def _bad(want: str) -> StateError:
    return StateError(f"engine state: a value is not {want}")


class Spec:
    ops: frozenset = frozenset()
    name = "?"
    role = ""        # "owner", "episode": references Obj resolves (gewtui.model.state_schema)

    def enc(self, v: Any, w: _W) -> None:
        raise NotImplementedError

    def dec(self, r: _R) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class _Int(Spec):
    ops, name = frozenset({INT, BIG}), "int"

    def enc(self, v, w):
        if v.__class__ is not int:
            raise _bad("an int")
        if -_I64 <= v < _I64:
            w.shape.append(INT)
            w.ints.append(v)
        elif _I64 <= v < _U64:
            w.shape.append(BIG)
            w.big.append(v)
        else:
            raise _bad("a 64-bit int")

    def dec(self, r):
        op = r.op()
        if op == INT:
            return r.int()
        if op == BIG:
            bi = r.bi
            r.bi = bi + 1
            v = r.big[bi]
            if v < _I64:
                raise _bad("a canonical int")
            return v
        raise _bad("an int")


class _Bool(Spec):
    ops, name = frozenset({FALSE, TRUE}), "bool"

    def enc(self, v, w):
        if v is True:
            w.shape.append(TRUE)
        elif v is False:
            w.shape.append(FALSE)
        else:
            raise _bad("a bool")

    def dec(self, r):
        op = r.op()
        if op == TRUE:
            return True
        if op == FALSE:
            return False
        raise _bad("a bool")


class _None(Spec):
    ops, name = frozenset({NONE}), "None"

    def enc(self, v, w):
        if v is not None:
            raise _bad("None")
        w.shape.append(NONE)

    def dec(self, r):
        if r.op() != NONE:
            raise _bad("None")
        return None


class _Bytes(Spec):
    ops, name = frozenset({BYTES}), "bytes"

    def enc(self, v, w):
        if v.__class__ is not bytes or len(v) > MAX_BYTES:
            raise _bad("bytes")
        w.shape.append(BYTES)
        w.ints.append(len(v))
        w.heap += v

    def dec(self, r):
        if r.op() != BYTES:
            raise _bad("bytes")
        return r.chunk(MAX_BYTES)


class _Str(Spec):
    ops, name = frozenset({STR}), "str"

    def enc(self, v, w):
        if v.__class__ is not str:
            raise _bad("a string")
        b = v.encode()
        if len(b) > MAX_STR:
            raise _bad("a short string")
        w.shape.append(STR)
        w.ints.append(len(b))
        w.heap += b

    def dec(self, r):
        if r.op() != STR:
            raise _bad("a string")
        try:
            return r.chunk(MAX_STR).decode()
        except UnicodeDecodeError:
            raise _bad("UTF-8 text") from None


class Tup(Spec):
    """A tuple of fixed length, one type per position."""

    ops = frozenset({TUPLE})

    def __init__(self, *items: Spec) -> None:
        self.items = items
        self.name = f"({', '.join(map(repr, items))})"
        # all ints: read as one slice when every one is a small int (the common case)
        self.fast = bytes([INT] * len(items)) if all(s is INT_ for s in items) else None

    def enc(self, v, w):
        if v.__class__ is not tuple or len(v) != len(self.items):
            raise _bad(f"a tuple {self.name}")
        w.shape.append(TUPLE)
        w.ints.append(len(v))
        if self.fast is not None and _small_ints(v):
            w.shape += self.fast
            w.ints += v
            return
        for s, x in zip(self.items, v):
            s.enc(x, w)

    def dec(self, r):
        if r.op() != TUPLE or r.count() != len(self.items):
            raise _bad(f"a tuple {self.name}")
        fast = self.fast
        if fast is not None:
            si, n = r.si, len(fast)
            if r.shape[si:si + n] == fast:
                ii = r.ii
                r.si, r.ii = si + n, ii + n
                v = tuple(r.ints[ii:ii + n])
                if len(v) != n:
                    raise _bad("a complete tuple")
                return v
        return tuple([s.dec(r) for s in self.items])


class Seq(Spec):
    """A tuple or list of any length (``kinds``: which of the two), or a deque."""

    def __init__(self, item: Spec, kinds: str) -> None:
        self.item, self.kinds = item, kinds
        # "t": tuple, "l": list, "el": the empty tuple or a list (model containers start as
        # the shared () and become lists when used), "d": a deque (stored as a list)
        self.ops = frozenset({TUPLE} if kinds == "t" else {LIST} if kinds in "ld" else {TUPLE, LIST})
        self.name = {"t": "tuple", "l": "list", "el": "()|list", "d": "deque"}[kinds] + f"[{item!r}]"

    def enc(self, v, w):
        k = self.kinds
        c = v.__class__
        if k == "t" and c is tuple or k == "el" and c is tuple and not v:
            w.shape.append(TUPLE)
        elif (k in ("l", "el") and c is list) or (k == "d" and c is deque):
            w.shape.append(LIST)
        else:
            raise _bad(f"a {self.name}")
        w.ints.append(len(v))
        if self.item is INT_ and _small_ints(v):
            w.shape += bytes([INT]) * len(v)
            w.ints += v
            return
        enc = self.item.enc
        for x in v:
            enc(x, w)

    def _items(self, r, n):
        if self.item is INT_:
            si = r.si
            if r.shape[si:si + n] == bytes([INT]) * n:
                ii = r.ii
                r.si, r.ii = si + n, ii + n
                out = r.ints[ii:ii + n]
                if len(out) != n:
                    raise _bad("a complete sequence")
                return out
        dec = self.item.dec
        return [dec(r) for _ in range(n)]

    def dec(self, r):
        op = r.op()
        n = r.count()
        k = self.kinds
        if op == TUPLE and (k == "t" or k == "el" and n == 0):
            return tuple(self._items(r, n))
        if op == LIST and k in ("l", "el", "d"):
            out = self._items(r, n)
            return deque(out) if k == "d" else out
        raise _bad(f"a {self.name}")


class Map(Spec):
    """A dict (insertion order kept: the model iterates some of them)."""

    ops = frozenset({DICT})

    def __init__(self, key: Spec, value: Spec) -> None:
        self.key, self.value = key, value
        self.name = f"dict[{key!r}, {value!r}]"

    def enc(self, v, w):
        if v.__class__ is not dict:
            raise _bad(f"a {self.name}")
        w.shape.append(DICT)
        w.ints.append(len(v))
        if self.key is INT_ and self.value in (INT_, BYTES_) and _small_ints(v):
            vals = list(v.values())
            if self.value is INT_ and _small_ints(vals):
                w.shape += bytes([INT, INT]) * len(v)
                w.ints += [x for kv in v.items() for x in kv]
                return
            if self.value is BYTES_ and all(x.__class__ is bytes and len(x) <= MAX_BYTES
                                            for x in vals):
                w.shape += bytes([INT, BYTES]) * len(v)
                w.ints += [x for k, b in v.items() for x in (k, len(b))]
                w.heap += b"".join(vals)
                return
        ke, ve = self.key.enc, self.value.enc
        for k, x in v.items():
            ke(k, w)
            ve(x, w)

    def _fast(self, r, n):
        """(keys, values) of an int-keyed dict of small ints or bytes, read as slices;
        None when the opcodes are not exactly that."""
        if self.key is not INT_ or self.value not in (INT_, BYTES_):
            return None
        si = r.si
        pair = bytes([INT, INT if self.value is INT_ else BYTES])
        if r.shape[si:si + 2 * n] != pair * n:
            return None
        ii = r.ii
        flat = r.ints[ii:ii + 2 * n]
        if len(flat) != 2 * n:
            raise _bad("a complete dict")
        keys, second = flat[0::2], flat[1::2]
        if self.value is BYTES_:
            if second and (min(second) < 0 or max(second) > MAX_BYTES):
                raise _bad("bytes of a bounded length")
            hi, heap = r.hi, r.heap
            end = hi + sum(second)
            if end > len(heap):
                raise _bad("bytes inside the state")
            vals = []
            for ln in second:
                vals.append(heap[hi:hi + ln])
                hi += ln
            r.hi = hi
        else:
            vals = second
        r.si, r.ii = si + 2 * n, ii + 2 * n
        return keys, vals

    def dec(self, r):
        if r.op() != DICT:
            raise _bad(f"a {self.name}")
        n = r.count(2)
        got = self._fast(r, n)
        if got is not None:
            keys, vals = got
        else:
            kd, vd = self.key.dec, self.value.dec
            keys, vals = [], []
            for _ in range(n):
                keys.append(kd(r))
                vals.append(vd(r))
        if n > MAX_COLLIDE and max(Counter(map(hash, keys)).values()) > MAX_COLLIDE:
            raise StateError("engine state: too many keys of one dict share a hash")
        d = dict(zip(keys, vals))
        if len(d) != n:
            raise StateError("engine state: a dict repeats a key")
        return d


class Union(Spec):
    """One of several types, told apart by their first opcode."""

    def __init__(self, *alts: Spec) -> None:
        self.alts = alts
        self.by_op: dict[int, Spec] = {}
        for a in alts:
            for op in a.ops:
                assert op not in self.by_op, f"ambiguous union {alts}"
                self.by_op[op] = a
        self.ops = frozenset(self.by_op)
        self.name = "|".join(map(repr, alts))

    def enc(self, v, w):
        for a in self.alts:
            if _accepts(a, v):
                a.enc(v, w)
                return
        raise _bad(self.name)

    def dec(self, r):
        a = self.by_op.get(r.shape[r.si]) if r.si < len(r.shape) else None
        if a is None:
            raise _bad(self.name)
        return a.dec(r)


def _small_ints(v: Any) -> bool:
    """Every item an int (not a bool) that fits an INT opcode."""
    for x in v:
        if x.__class__ is not int or not -_I64 <= x < _I64:
            return False
    return True


def _accepts(s: Spec, v: Any) -> bool:
    """Which union alternative a value belongs to, by its Python type alone."""
    c = v.__class__
    if s is INT_:
        return c is int
    if s is BOOL_:
        return c is bool
    if s is NONE_:
        return v is None
    if s is BYTES_:
        return c is bytes
    if s is STR_:
        return c is str
    if isinstance(s, Tup):
        return c is tuple
    if isinstance(s, Seq):
        return (c is tuple and (s.kinds == "t" or not v)) or (c is list and s.kinds != "t") \
            or (c is deque and s.kinds == "d")
    if isinstance(s, Map):
        return c is dict
    return c is getattr(s, "cls", None)     # an object, or a reference to one


class Obj(Spec):
    """A fresh instance of one model class, its slots in declaration order."""

    ops = frozenset({OBJ})

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.name = cls.__name__
        self._plan: list | None = None
        self._enc: Any = None

    def plan(self) -> list:
        """The class's slots as steps: a run of int slots (read as one slice) or one slot."""
        if self._plan is None:
            plan: list = []
            for name, spec in SCHEMA[self.cls]:
                if spec is INT_ and plan and plan[-1][1] is None:
                    plan[-1][0].append(name)
                elif spec is INT_:
                    plan.append(([name], None))
                else:
                    plan.append((name, spec))
            self._plan = [(tuple(n), bytes([INT]) * len(n)) if s is None else (n, s)
                          for n, s in plan]
        return self._plan

    def enc(self, v, w):
        if v.__class__ is not self.cls:
            raise _bad(f"a {self.name}")
        w.shape.append(OBJ)
        enc = self._enc
        if enc is None:
            enc = self._enc = _slots_encoder(self.cls, self.plan())
        if self.cls is Flow:
            outer, w.flow = w.flow, v
            enc(v, w)
            w.flow = outer
        else:
            enc(v, w)

    def dec(self, r):
        cls = self.cls
        if r.op() != OBJ:
            raise _bad(f"a {self.name}")
        o = object.__new__(cls)
        if cls is Flow:
            outer, r.flow, fix, r.fix = r.flow, o, r.fix, []
        for name, spec in self.plan():
            if spec.__class__ is bytes:
                si, n = r.si, len(spec)
                if r.shape[si:si + n] == spec:
                    ii = r.ii
                    vals = r.ints[ii:ii + n]
                    if len(vals) != n:
                        raise _bad("a complete object")
                    r.si, r.ii = si + n, ii + n
                else:
                    vals = [INT_.dec(r) for _ in name]
                for k, x in zip(name, vals):
                    setattr(o, k, x)
                continue
            if spec.role == "owner":
                v = r.flow
            elif spec.role == "episode":
                i = spec.dec(r)
                if i is not None:
                    r.fix.append((o, i))
                v = None
            else:
                v = spec.dec(r)
            setattr(o, name, v)
        if cls is Flow:
            eps = o.episodes
            for p, i in r.fix:
                if not 0 <= i < len(eps):
                    raise StateError("engine state: a match names an episode its flow lacks")
                p.ep = eps[i]
            r.flow, r.fix = outer, fix
        return o


def _slots_encoder(cls: type, plan: list) -> Any:
    """enc(v, w) writing ``cls``'s slots in one function: a dumps walks tens of thousands
    of these objects, and a call per slot would double its cost. Built from the schema's
    own slot names and nothing else; a value the fast paths do not take goes through its
    spec, which checks it."""
    ns: dict[str, Any] = {"INT_": INT_, "NONE": NONE, "I64": _I64}
    body = ["def enc(v, w):", "    shape = w.shape", "    ints = w.ints"]
    for k, (name, spec) in enumerate(plan):
        if spec.__class__ is bytes:
            ns[f"RUN{k}"] = spec
            vals = ", ".join(f"v.{n}" for n in name)
            body += [f"    vals = ({vals},)",
                     "    for x in vals:",
                     "        if x.__class__ is not int or not -I64 <= x < I64:",
                     "            for x in vals:",
                     "                INT_.enc(x, w)",
                     "            break",
                     "    else:",
                     f"        shape += RUN{k}",
                     "        ints += vals"]
        else:
            ns[f"S{k}"] = spec
            if isinstance(spec, Union) and NONE_ in spec.alts:
                body += [f"    x = v.{name}",
                         "    if x is None:",
                         "        shape.append(NONE)",
                         "    else:",
                         f"        S{k}.enc(x, w)"]
            else:
                body.append(f"    S{k}.enc(v.{name}, w)")
    exec("\n".join(body), ns)  # noqa: S102
    return ns["enc"]


INT_, BOOL_, NONE_, BYTES_, STR_ = _Int(), _Bool(), _None(), _Bytes(), _Str()
I, B, S, Y = INT_, BOOL_, STR_, BYTES_
SCALAR = Union(INT_, BOOL_, NONE_, BYTES_, STR_)
