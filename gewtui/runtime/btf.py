"""A small pure-Python reader of the running kernel's BTF (/sys/kernel/btf/vmlinux): a runtime fact
like the tracefs formats (gewtui.runtime.tracefs), read by capability negotiation and by the
kernel plane alike.

The probes read a few kernel structs (the socket's network namespace, an skb's headers, a
qdisc's device). The kernel headers on disk may belong to another kernel version, so struct
layouts are never taken from them: this module resolves member offsets from the BTF of the
kernel that is running and the plane passes them to the BPF C as ``-D`` constants. A probe
whose offsets come from here is as exact as the kernel's own debug info.

Only what offset resolution needs is decoded: type kinds, names, struct/union members
(through anonymous members and typedef/const/volatile chains), pointers, arrays, enums,
and the variables of data sections (where each per-CPU variable lies in .data..percpu).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

VMLINUX = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

# BTF_KIND_* (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


class BTFError(Exception):
    """The BTF blob is missing, malformed, or lacks a struct member the probes need."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield


@dataclass(frozen=True)
class BType:
    kind: int
    name: str
    size: int           # bytes for INT/STRUCT/UNION/ENUM; 0 otherwise
    ref: int            # referenced type for PTR/TYPEDEF/modifiers/VAR; element type for ARRAY
    nelems: int         # ARRAY only
    members: tuple[Member, ...]
    enum_values: tuple[tuple[str, int], ...]
    params: tuple[int, ...] = ()   # FUNC_PROTO parameter type ids


@dataclass(frozen=True)
class Resolved:
    """A member path resolved to a byte offset from the outer struct and its type."""

    offset: int
    size: int
    type_id: int


class BTF:
    """Parsed BTF: types by id, lookups by name."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BTFError("BTF blob too short")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", data, 0)
        if magic != BTF_MAGIC:
            raise BTFError(f"bad BTF magic {magic:#x}")
        tstart = hdr_len + type_off
        sstart = hdr_len + str_off
        if tstart + type_len > len(data) or sstart + str_len > len(data):
            raise BTFError("BTF sections exceed the blob")
        self._strings = data[sstart:sstart + str_len]
        self.types: list[BType | None] = [None]  # id 0 is void
        self._by_name: dict[tuple[int, str], list[int]] = {}
        # DATASEC name -> [(VAR type id, byte offset in the section, size)]
        self._datasecs: dict[str, list[tuple[int, int, int]]] = {}
        self._parse_types(data, tstart, tstart + type_len)

    def _str(self, off: int) -> str:
        end = self._strings.find(b"\0", off)
        return self._strings[off:end].decode("ascii", "replace")

    def _parse_types(self, data: bytes, pos: int, end: int) -> None:
        unpack = struct.unpack_from
        while pos < end:
            name_off, info, size_or_type = unpack("<III", data, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = info >> 31
            name = self._str(name_off) if name_off else ""
            size, ref, nelems = 0, 0, 0
            members: tuple[Member, ...] = ()
            enums: tuple[tuple[str, int], ...] = ()
            params: tuple[int, ...] = ()
            if kind == INT:
                size = size_or_type
                pos += 4
            elif kind == ARRAY:
                ref, _index_type, nelems = unpack("<III", data, pos)
                pos += 12
            elif kind in (STRUCT, UNION):
                size = size_or_type
                ms = []
                for i in range(vlen):
                    m_name, m_type, m_off = unpack("<III", data, pos + 12 * i)
                    if kflag:
                        ms.append(Member(self._str(m_name), m_type, m_off & 0xFFFFFF, m_off >> 24))
                    else:
                        ms.append(Member(self._str(m_name), m_type, m_off, 0))
                members = tuple(ms)
                pos += 12 * vlen
            elif kind == ENUM:
                size = size_or_type
                signed = bool(kflag)
                vals = []
                for i in range(vlen):
                    e_name, e_val = unpack("<Ii" if signed else "<II", data, pos + 8 * i)
                    vals.append((self._str(e_name), e_val))
                enums = tuple(vals)
                pos += 8 * vlen
            elif kind == ENUM64:
                size = size_or_type
                vals = []
                for i in range(vlen):
                    e_name, lo, hi = unpack("<III", data, pos + 12 * i)
                    vals.append((self._str(e_name), (hi << 32) | lo))
                enums = tuple(vals)
                pos += 12 * vlen
            elif kind == FUNC_PROTO:
                ref = size_or_type  # return type
                params = tuple(unpack("<II", data, pos + 8 * i)[1] for i in range(vlen))
                pos += 8 * vlen
            elif kind == VAR:
                ref = size_or_type
                pos += 4
            elif kind == DATASEC:
                self._datasecs.setdefault(name, []).extend(
                    unpack("<III", data, pos + 12 * i) for i in range(vlen))
                pos += 12 * vlen
            elif kind == DECL_TAG:
                pos += 4
            elif kind == FLOAT:
                size = size_or_type
            elif kind in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, TYPE_TAG):
                ref = size_or_type
                if kind == FWD:
                    size = 0
            else:
                raise BTFError(f"unknown BTF kind {kind} at type {len(self.types)}")
            tid = len(self.types)
            self.types.append(BType(kind, name, size, ref, nelems, members, enums, params))
            if name and kind in (STRUCT, UNION, ENUM, ENUM64, TYPEDEF, FUNC):
                self._by_name.setdefault((kind, name), []).append(tid)

    # -- lookups -------------------------------------------------------------------------
    def find(self, kind: int, name: str) -> int:
        """Id of the complete type ``name`` of ``kind`` (the first with a non-zero size)."""
        ids = self._by_name.get((kind, name), [])
        for tid in ids:
            t = self.types[tid]
            if t is not None and (t.size or kind == TYPEDEF):
                return tid
        raise BTFError(f"BTF has no {_KIND_NAMES.get(kind, kind)} {name}")

    def strip(self, tid: int) -> int:
        """Follow typedefs and qualifiers to the underlying type."""
        seen = 0
        while True:
            t = self.types[tid]
            if t is None or t.kind not in _MODIFIERS:
                return tid
            tid = t.ref
            seen += 1
            if seen > 64:
                raise BTFError("typedef chain too long")

    def size_of(self, tid: int) -> int:
        tid = self.strip(tid)
        t = self.types[tid]
        if t is None:
            return 0
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            return t.nelems * self.size_of(t.ref)
        return t.size

    def _find_member(self, tid: int, name: str, base: int):
        """(bit offset, the member) of member ``name`` in struct/union ``tid``, searching
        anonymous struct/union members recursively (C11 anonymous members)."""
        t = self.types[self.strip(tid)]
        if t is None or t.kind not in (STRUCT, UNION):
            return None
        for m in t.members:
            if m.name == name:
                return base + m.bit_offset, m
        for m in t.members:
            if not m.name:
                hit = self._find_member(m.type_id, name, base + m.bit_offset)
                if hit is not None:
                    return hit
        return None

    def member(self, struct_name: str, path: str) -> Resolved:
        """Resolve ``path`` (dotted, e.g. ``__sk_common.skc_net.net``) inside ``struct
        struct_name`` to a byte offset. Pointers are not followed: each probe dereferences
        them itself with bpf_probe_read_kernel."""
        tid = self.find(STRUCT, struct_name)
        bits = 0
        for part in path.split("."):
            hit = self._find_member(tid, part, 0)
            if hit is None:
                raise BTFError(f"struct {struct_name} has no member {path} (at {part})")
            off, m = hit
            tid = m.type_id
            bits += off
        if bits % 8:
            raise BTFError(f"{struct_name}.{path} is a bitfield")
        return Resolved(bits // 8, self.size_of(tid), tid)

    def bitfield(self, struct_name: str, path: str) -> tuple[int, int, int]:
        """(byte offset, bit shift in that byte, width in bits) of a bitfield member that
        lies within one byte, e.g. ``inet_connection_sock.icsk_ca_state``: the probe reads
        the byte and shifts and masks (little-endian bit numbering, as on x86/arm64)."""
        head, _, last = path.rpartition(".")
        tid = self.find(STRUCT, struct_name)
        base = 0
        if head:
            outer = self.member(struct_name, head)
            base, tid = outer.offset * 8, outer.type_id
        hit = self._find_member(tid, last, 0)
        if hit is None:
            raise BTFError(f"struct {struct_name} has no member {path}")
        bits, width = base + hit[0], hit[1].bitfield_size
        if width == 0 or (bits % 8) + width > 8:
            raise BTFError(f"{struct_name}.{path} is not a bitfield within one byte "
                           f"(bit {bits}, {width} bits)")
        return bits // 8, bits % 8, width

    def section_var(self, section: str, name: str) -> tuple[int, int]:
        """(byte offset, size) of variable ``name`` in data section ``section``, e.g. a
        per-CPU variable in ``.data..percpu``: two variables' offsets differ by as much as
        their per-CPU instances on any one CPU do."""
        for tid, off, size in self._datasecs.get(section, ()):
            t = self.types[tid] if 0 <= tid < len(self.types) else None
            if t is not None and t.kind == VAR and t.name == name:
                return off, size
        raise BTFError(f"BTF has no variable {name} in {section}")

    def has_func(self, name: str) -> bool:
        return (FUNC, name) in self._by_name

    def type_name(self, tid: int, depth: int = 0) -> str:
        """A C-like spelling of a type, e.g. 'const struct flowi4 *', for reports."""
        t = self.types[tid] if 0 <= tid < len(self.types) else None
        if t is None or depth > 16:
            return "void"
        if t.kind == PTR:
            return self.type_name(t.ref, depth + 1) + " *"
        if t.kind == CONST:
            return "const " + self.type_name(t.ref, depth + 1)
        if t.kind in (VOLATILE, RESTRICT, TYPE_TAG):
            return self.type_name(t.ref, depth + 1)
        if t.kind == ARRAY:
            return f"{self.type_name(t.ref, depth + 1)}[{t.nelems}]"
        prefix = {STRUCT: "struct ", UNION: "union ", ENUM: "enum ", ENUM64: "enum "}.get(t.kind, "")
        if t.kind == FWD:
            prefix = "union " if t.size else "struct "
        return prefix + (t.name or "<anon>")

    def raw_tracepoint_args(self, name: str) -> list[str]:
        """Argument types of a raw tracepoint, from the ``btf_trace_<name>`` typedef the
        kernel emits for every tracepoint (the leading ``void *`` context is dropped)."""
        tid = self.find(TYPEDEF, f"btf_trace_{name}")
        ptr = self.types[self.strip(tid)]
        if ptr is None or ptr.kind != PTR:
            raise BTFError(f"btf_trace_{name} is not a function pointer")
        proto = self.types[self.strip(ptr.ref)]
        if proto is None or proto.kind != FUNC_PROTO:
            raise BTFError(f"btf_trace_{name} is not a function pointer")
        return [self.type_name(p) for p in proto.params[1:]]

    def enum(self, name: str) -> dict[str, int]:
        for kind in (ENUM, ENUM64):
            try:
                return dict(self.types[self.find(kind, name)].enum_values)  # type: ignore[union-attr]
            except BTFError:
                continue
        raise BTFError(f"BTF has no enum {name}")


_KIND_NAMES = {STRUCT: "struct", UNION: "union", ENUM: "enum", ENUM64: "enum", TYPEDEF: "typedef"}


@lru_cache(maxsize=1)
def load_vmlinux(path: str = VMLINUX) -> BTF:
    """The running kernel's BTF, parsed once per process."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BTFError(f"cannot read {path}: {e.strerror}") from e
    return BTF(data)
