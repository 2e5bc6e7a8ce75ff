"""The template pattern language: parsed from a template's ``[pattern]`` table, validated
against the L0 schema, compiled to predicates the matcher calls on the feed path.

A pattern is a sequence of steps; each step accepts one or more alternatives (an event kind
or L1 signal plus field conditions) and may need ``count`` matching events within
``window_ms``. Steps must be satisfied in order, optionally all within ``within_ms``, on one
flow (or on one socket of it with ``same_socket``). ``scope = "path"`` also offers the flow the
per-interface events (qdisc summaries, unattributed drops) of the interface its path uses.
docs/observation.md is the reference; every mistake is reported with its location.

Predicates are generated Python expressions over validated field names; every literal is
passed as a bound constant, never pasted into source, so a template cannot inject code.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable

from gewtui.model.schema import EVENT_KINDS, SIGNAL_FIELDS, FieldInfo, enum_value, fields_of

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "prefix")
_PY_OP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_OPS_BY_TYPE = {
    "int": set(OPS) - {"prefix"}, "uint": set(OPS) - {"prefix"}, "enum": {"eq", "ne", "in", "not_in"},
    "bool": {"eq", "ne"}, "str": {"eq", "ne", "in", "not_in", "prefix"},
    "bytes": {"eq", "ne", "in", "not_in"},
}
MAX_STEPS = 8
MAX_WINDOW_MS = 24 * 3600 * 1000

Predicate = Callable[[Any, Any], bool]


class PatternError(ValueError):
    """A pattern mistake; ``where`` is the dotted location inside the template."""

    def __init__(self, where: str, msg: str):
        super().__init__(f"{where}: {msg}")
        self.where = where
        self.msg = msg


@dataclass(frozen=True)
class Cond:
    field: str
    op: str
    value: Any
    info: FieldInfo


@dataclass(frozen=True)
class Alt:
    kind: str                      # event kind or L1 signal name
    conds: tuple[Cond, ...]
    pred: Predicate = field(compare=False, repr=False)

    def matches(self, ev) -> bool:
        """Does an L0 event satisfy this alternative? (L1 signals: their source kind only.)"""
        kind = ev.WhichOneof("body")
        if self.kind in SIGNAL_FIELDS:
            from gewtui.model.schema import SIGNAL_SOURCES
            return kind in SIGNAL_SOURCES[self.kind]
        return kind == self.kind and bool(self.pred(ev, getattr(ev, kind)))


@dataclass(frozen=True)
class Step:
    alts: tuple[Alt, ...]
    count: int
    window_ns: int | None
    by_kind: dict[str, Predicate] = field(compare=False, repr=False)

    def matches(self, ev) -> bool:
        return any(a.matches(ev) for a in self.alts)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(a.kind for a in self.alts)


@dataclass(frozen=True)
class Pattern:
    steps: tuple[Step, ...]
    same_socket: bool
    within_ns: int | None
    scope: str                     # "flow" or "path"
    # the whole sequence must take at least this long (a latency threshold), else no match
    longer_ns: int | None = None

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k for s in self.steps for k in s.kinds)

    def matches(self, ev) -> bool:
        """Does the event satisfy some step of the pattern (the property evidence must have)?"""
        return any(s.matches(ev) for s in self.steps)


def _convert(info: FieldInfo, value, where: str):
    t = info.type
    if t == "bool":
        if not isinstance(value, bool):
            raise PatternError(where, f"expects true or false, got {value!r}")
        return value
    if t in ("int", "uint"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PatternError(where, f"expects an integer, got {value!r}")
        if t == "uint" and value < 0:
            raise PatternError(where, f"is unsigned, got {value}")
        return value
    if t == "enum":
        if isinstance(value, str):
            n = enum_value(info, value)
            if n is None:
                names = ", ".join(v.name for v in info.enum.values)
                raise PatternError(where, f"unknown value {value!r} (one of: {names})")
            return n
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PatternError(where, f"expects an enum name, got {value!r}")
    if t == "str":
        if not isinstance(value, str):
            raise PatternError(where, f"expects a string, got {value!r}")
        return value
    if t == "bytes":
        if not isinstance(value, str):
            raise PatternError(where, f"expects an address string, got {value!r}")
        try:
            return ipaddress.ip_address(value).packed
        except ValueError:
            raise PatternError(where, f"expects an IP address, got {value!r}") from None
    raise PatternError(where, f"cannot be tested (type {t})")


def _conds(kind: str, where_tbl, loc: str) -> tuple[Cond, ...]:
    if where_tbl is None:
        return ()
    if not isinstance(where_tbl, dict):
        raise PatternError(loc, "must be a table of field = value or field = { op = value }")
    table = fields_of(kind)
    out = []
    for fname, spec in where_tbl.items():
        floc = f"{loc}.{fname}"
        info = table.get(fname)
        if info is None:
            raise PatternError(floc, f"unknown field for {kind!r} (known: {', '.join(sorted(table))})")
        ops = spec if isinstance(spec, dict) else {"eq": spec}
        if not ops:
            raise PatternError(floc, "empty condition")
        for op, val in ops.items():
            oloc = f"{floc}.{op}" if isinstance(spec, dict) else floc
            if op not in OPS:
                raise PatternError(oloc, f"unknown operator (one of: {', '.join(OPS)})")
            if op not in _OPS_BY_TYPE[info.type]:
                raise PatternError(oloc, f"not allowed on a {info.type} field")
            if op in ("in", "not_in"):
                if not isinstance(val, list) or not val:
                    raise PatternError(oloc, "expects a non-empty list")
                cv: Any = frozenset(_convert(info, v, oloc) for v in val)
            else:
                cv = _convert(info, val, oloc)
            out.append(Cond(fname, op, cv, info))
    return tuple(out)


def _accessor(c: Cond) -> str:
    if c.info.owner == "signal":
        return f"b[{c.field!r}]"  # field names are validated identifiers of SIGNAL_FIELDS
    base = "b" if c.info.owner == "body" else "e"
    return base + "".join("." + p for p in c.info.path)


def _compile(conds_groups: list[tuple[Cond, ...]]) -> Predicate:
    """One predicate: OR over groups, AND within a group; constants bound by name."""
    consts: dict[str, Any] = {}
    ors = []
    for conds in conds_groups:
        ands = []
        for c in conds:
            name = f"_c{len(consts)}"
            consts[name] = c.value
            x = _accessor(c)
            if c.op in _PY_OP:
                ands.append(f"({x} {_PY_OP[c.op]} {name})")
            elif c.op == "in":
                ands.append(f"({x} in {name})")
            elif c.op == "not_in":
                ands.append(f"({x} not in {name})")
            else:  # prefix
                ands.append(f"{x}.startswith({name})")
        ors.append("(" + (" and ".join(ands) if ands else "True") + ")")
    expr = " or ".join(ors)
    fn = eval("lambda e, b: " + expr, {"__builtins__": {}, **consts})  # noqa: S307 - source built from validated names
    # kept for callers that inline the test into generated code (the matcher's unrolled offers)
    fn.expr, fn.consts = expr, consts
    return fn


def _ms(value, where: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PatternError(where, f"expects an integer number of milliseconds, got {value!r}")
    if not minimum <= value <= MAX_WINDOW_MS:
        raise PatternError(where, f"must be between {minimum} and {MAX_WINDOW_MS}, got {value}")
    return value


def _alt(tbl, loc: str) -> Alt:
    if not isinstance(tbl, dict):
        raise PatternError(loc, "must be a table with 'event' and optional 'where'")
    extra = set(tbl) - {"event", "where"}
    if extra:
        raise PatternError(f"{loc}.{sorted(extra)[0]}", "unknown key (expected event, where)")
    kind = tbl.get("event")
    if kind is None:
        raise PatternError(f"{loc}.event", "missing")
    if kind not in EVENT_KINDS and kind not in SIGNAL_FIELDS:
        known = ", ".join(list(EVENT_KINDS) + list(SIGNAL_FIELDS))
        raise PatternError(f"{loc}.event", f"unknown event kind {kind!r} (known: {known})")
    conds = _conds(kind, tbl.get("where"), f"{loc}.where")
    return Alt(kind, conds, _compile([conds]))


def _step(tbl, loc: str) -> Step:
    if not isinstance(tbl, dict):
        raise PatternError(loc, "must be a table")
    extra = set(tbl) - {"event", "where", "any", "count", "window_ms"}
    if extra:
        raise PatternError(f"{loc}.{sorted(extra)[0]}",
                           "unknown key (expected event, where, any, count, window_ms)")
    if "any" in tbl:
        if "event" in tbl or "where" in tbl:
            raise PatternError(loc, "use either 'event'/'where' or 'any', not both")
        if not isinstance(tbl["any"], list) or not tbl["any"]:
            raise PatternError(f"{loc}.any", "expects a non-empty list of alternatives")
        alts = tuple(_alt(a, f"{loc}.any[{i}]") for i, a in enumerate(tbl["any"]))
    else:
        alts = (_alt({k: v for k, v in tbl.items() if k in ("event", "where")}, loc),)
    count = tbl.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
        raise PatternError(f"{loc}.count", f"must be an integer from 1 to 10000, got {count!r}")
    window = tbl.get("window_ms")
    window_ns = None if window is None else _ms(window, f"{loc}.window_ms") * 1_000_000
    if count > 1 and window_ns is None:
        raise PatternError(f"{loc}.window_ms", "required when count > 1")
    by_kind = {k: _compile([a.conds for a in alts if a.kind == k]) for k in {a.kind for a in alts}}
    return Step(alts, count, window_ns, by_kind)


def parse_pattern(tbl, loc: str = "pattern") -> Pattern:
    if not isinstance(tbl, dict):
        raise PatternError(loc, "missing or not a table")
    extra = set(tbl) - {"step", "same_socket", "within_ms", "scope", "longer_than_ms"}
    if extra:
        raise PatternError(f"{loc}.{sorted(extra)[0]}",
                           "unknown key (expected step, same_socket, within_ms, longer_than_ms, scope)")
    steps_tbl = tbl.get("step")
    if not isinstance(steps_tbl, list) or not steps_tbl:
        raise PatternError(f"{loc}.step", "needs at least one [[pattern.step]]")
    if len(steps_tbl) > MAX_STEPS:
        raise PatternError(f"{loc}.step", f"at most {MAX_STEPS} steps")
    steps = tuple(_step(s, f"{loc}.step[{i}]") for i, s in enumerate(steps_tbl))
    same = tbl.get("same_socket", False)
    if not isinstance(same, bool):
        raise PatternError(f"{loc}.same_socket", "expects true or false")
    within = tbl.get("within_ms")
    within_ns = None if within is None else _ms(within, f"{loc}.within_ms") * 1_000_000
    scope = tbl.get("scope", "flow")
    if scope not in ("flow", "path"):
        raise PatternError(f"{loc}.scope", f"must be 'flow' or 'path', got {scope!r}")
    for i, s in enumerate(steps):
        for a in s.alts:
            if same and a.kind in SIGNAL_FIELDS:
                raise PatternError(f"{loc}.step[{i}]", f"{a.kind} has no socket; drop same_socket")
    longer = tbl.get("longer_than_ms")
    longer_ns = None if longer is None else _ms(longer, f"{loc}.longer_than_ms") * 1_000_000
    if longer_ns is not None and len(steps) < 2:
        raise PatternError(f"{loc}.longer_than_ms", "needs at least two steps (it bounds the time between the first and the last)")
    return Pattern(steps, same, within_ns, scope, longer_ns)
