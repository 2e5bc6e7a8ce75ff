"""Reads tracepoint formats from tracefs: the fields each probe relies on, and the kernel's
own vocabularies (drop reasons, reset reasons, TCP states) from ``__print_symbolic``.

Everything here is read at runtime from ``<tracefs>/events/<group>/<name>/format``, never
hard-coded, so a kernel that renumbers ``enum skb_drop_reason`` is still named correctly.
The capability report checks probe needs against these formats; the decoders use the
vocabularies. Pure Python, no root needed to parse (reading live tracefs usually needs root).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>-?\d+);")
_PAIR_RE = re.compile(r"\{\s*([^,{}]+?)\s*,\s*\"([^\"]*)\"\s*\}")
_REC_RE = re.compile(r"REC->(\w+)")


class FormatError(Exception):
    """A format file is missing or cannot be parsed."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str           # declared C type without the name, e.g. "__u8[4]", "enum sk_rst_reason"
    offset: int
    size: int
    signed: bool

    @property
    def is_array(self) -> bool:
        return self.type.endswith("]")


@dataclass
class TracepointFormat:
    group: str
    name: str
    id: int
    fields: dict[str, Field]
    print_fmt: str
    # field name -> {value: symbol} from __print_symbolic(REC->field, ...)
    symbols: dict[str, dict[int, str]] = field(default_factory=dict)
    # symbols whose value is a C identifier the format did not resolve (e.g. TCP_SYN_SENT)
    unresolved: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.group}:{self.name}"


def tracefs_path() -> str | None:
    """The mounted tracefs directory, or None."""
    for p in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(p, "events")) or os.path.isfile(os.path.join(p, "available_events")):
            return p
    return None


def _split_decl(decl: str) -> tuple[str, str]:
    """'__u8 saddr[4]' -> ('saddr', '__u8[4]'); '__data_loc char[] name' -> ('name', '__data_loc char[]')."""
    decl = decl.strip()
    m = re.match(r"^(?P<type>.*?)(?P<name>\w+)\s*(?P<arr>\[[^\]]*\])?$", decl)
    if not m:
        raise FormatError(f"cannot parse field declaration {decl!r}")
    ctype = m.group("type").strip()
    if m.group("arr"):
        ctype += m.group("arr")
    return m.group("name"), ctype


def _balanced(text: str, start: int) -> tuple[str, int]:
    """Text inside the parenthesis opening at ``start`` and the index after its close."""
    depth = 0
    in_str = False
    i = start
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
        i += 1
    raise FormatError("unbalanced parentheses in print fmt")


def _parse_int(s: str) -> int | None:
    try:
        return int(s, 0)
    except ValueError:
        return None


def parse_symbolic(print_fmt: str, known: dict[str, int] | None = None
                   ) -> tuple[dict[str, dict[int, str]], dict[str, list[tuple[str, str]]]]:
    """Every ``__print_symbolic(REC->f, {v, "name"}, ...)`` in a print fmt, as
    {field: {value: name}}. Values that are C identifiers are resolved through ``known``
    (e.g. TCP state names from another format) or returned as unresolved."""
    out: dict[str, dict[int, str]] = {}
    unresolved: dict[str, list[tuple[str, str]]] = {}
    pos = 0
    while True:
        i = print_fmt.find("__print_symbolic(", pos)
        if i < 0:
            break
        inner, pos = _balanced(print_fmt, i + len("__print_symbolic"))
        m = _REC_RE.search(inner.split(",", 1)[0])
        if not m:
            continue
        fname = m.group(1)
        table = out.setdefault(fname, {})
        for raw_val, sym in _PAIR_RE.findall(inner):
            v = _parse_int(raw_val)
            if v is None and known is not None:
                v = known.get(raw_val.strip())
            if v is None:
                unresolved.setdefault(fname, []).append((raw_val.strip(), sym))
            else:
                table.setdefault(v, sym)
    return out, unresolved


def parse_format(text: str, group: str = "", name: str = "",
                 known: dict[str, int] | None = None) -> TracepointFormat:
    """Parse the text of one tracefs format file."""
    fields: dict[str, Field] = {}
    tp_id = -1
    print_fmt = ""
    for line in text.splitlines():
        if line.startswith("name:") and not name:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("ID:"):
            tp_id = _parse_int(line.split(":", 1)[1].strip()) or -1
        elif line.startswith("print fmt:"):
            print_fmt = line.split(":", 1)[1].strip()
        else:
            m = _FIELD_RE.match(line)
            if m:
                fname, ftype = _split_decl(m.group("decl"))
                fields[fname] = Field(fname, ftype, int(m.group("offset")), int(m.group("size")),
                                      m.group("signed") == "1")
    if not fields:
        raise FormatError(f"format of {group}:{name} has no fields")
    symbols, unresolved = parse_symbolic(print_fmt, known)
    return TracepointFormat(group, name, tp_id, fields, print_fmt, symbols, unresolved)


class Tracefs:
    """Format files under one tracefs root (the live one, or a captured copy in tests)."""

    def __init__(self, root: str | None = None):
        self.root = root if root is not None else tracefs_path()
        self._cache: dict[tuple[str, str], TracepointFormat | FormatError] = {}

    def format_path(self, group: str, name: str) -> str | None:
        if self.root is None:
            return None
        return os.path.join(self.root, "events", group, name, "format")

    def exists(self, group: str, name: str) -> bool:
        p = self.format_path(group, name)
        return p is not None and os.path.exists(p)

    def read(self, group: str, name: str) -> TracepointFormat:
        """The parsed format; raises FormatError naming why it is unavailable."""
        key = (group, name)
        if key not in self._cache:
            try:
                self._cache[key] = self._load(group, name)
            except FormatError as e:
                self._cache[key] = e
        hit = self._cache[key]
        if isinstance(hit, FormatError):
            raise FormatError(str(hit))
        return hit

    def _load(self, group: str, name: str) -> TracepointFormat:
        p = self.format_path(group, name)
        if p is None:
            raise FormatError("tracefs is not mounted")
        try:
            with open(p) as f:
                text = f.read()
        except FileNotFoundError:
            raise FormatError(f"tracepoint {group}:{name} does not exist") from None
        except PermissionError:
            raise FormatError(f"format of {group}:{name} is not readable (needs root)") from None
        known = self._tcp_state_names() if (group, name) != ("sock", "inet_sock_set_state") else None
        return parse_format(text, group, name, known=known)

    def _tcp_state_names(self) -> dict[str, int]:
        """TCP state identifiers (TCP_SYN_SENT -> 2) as sock:inet_sock_set_state prints them
        with numbers; other TCP formats print the same states by identifier only."""
        try:
            fmt = self.read("sock", "inet_sock_set_state")
        except FormatError:
            return {}
        return {sym: v for v, sym in fmt.symbols.get("newstate", {}).items()}

    def symbols(self, group: str, name: str, fieldname: str) -> dict[int, str]:
        """{value: name} for one symbolic field; empty when the format has none."""
        try:
            return dict(self.read(group, name).symbols.get(fieldname, {}))
        except FormatError:
            return {}


@lru_cache(maxsize=4)
def live(root: str | None = None) -> Tracefs:
    """The live tracefs (cached per process)."""
    return Tracefs(root)
