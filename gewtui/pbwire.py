"""Protobuf wire-format primitives: varints, field keys, length-delimited fields, bounded
caches. Shared by the capture's encoders (gewtui.kernel.wire, the probe units) and by the
readers that expand a lifecycle record (gewtui.recording.lifecycle), so that both write an
event's bytes the one way protobuf itself writes them. Imports only the generated code.
"""
from __future__ import annotations

import struct
from typing import Callable

_SMALL = [bytes((i,)) for i in range(128)]
_U32 = struct.Struct("<I").pack
_MASK64 = (1 << 64) - 1
_hi_cache: dict[int, bytes] = {}


def _spread28(v: int) -> int:
    """The low 28 bits of v as four 7-bit groups, one per byte (little-endian)."""
    x = v & 0xFFFFFFF
    x = (x & 0x3FFF) | ((x & 0xFFFC000) << 2)
    return (x & 0x007F007F) | ((x & 0x3F803F80) << 1)


def _hi_varint(hi: int) -> bytes:
    """The varint of the groups above the low 28 bits (cached)."""
    if len(_hi_cache) > 4096:
        _hi_cache.clear()
    if hi < 0x10000000:
        v = _short_uvarint(hi)
    else:
        v = _U32(_spread28(hi) | 0x80808080) + _hi_varint(hi >> 28)
    _hi_cache[hi] = v
    return v


def _short_uvarint(v: int) -> bytes:
    if v < 0x80:
        return _SMALL[v]
    if v < 0x4000:
        return bytes(((v & 0x7F) | 0x80, v >> 7))
    if v < 0x200000:
        return _U32(_spread28(v) | 0x8080)[:3]
    return _U32(_spread28(v) | 0x808080)


def uvarint_reference(v: int) -> bytes:
    """Base-128 varint of an unsigned value < 2**64. Seven-bit groups are spread into
    bytes with a few shifts; the groups above the low 28 bits (the high bits of a kernel
    address, which rarely change) come from a cache. ``uvarint`` is this function in C
    (pbwire_native.c) where the extension is built."""
    if v < 0x10000000:
        return _short_uvarint(v)
    return _U32(_spread28(v) | 0x80808080) + (_hi_cache.get(v >> 28) or _hi_varint(v >> 28))


def _uvarint() -> Callable[[int], bytes]:
    try:
        from gewtui.pbwire_native import set_reference, uvarint as native
    except ImportError:
        return uvarint_reference       # not built (a source tree run without installing)
    set_reference(uvarint_reference)
    return native


uvarint = _uvarint()


def ivarint(v: int) -> bytes:
    """int32/int64 fields: negative values are ten-byte two's complement varints."""
    return uvarint(v & _MASK64) if v < 0 else uvarint(v)


def tag(msg: type, name: str) -> bytes:
    """The key bytes of field ``name`` of message class ``msg`` (from its descriptor)."""
    f = msg.DESCRIPTOR.fields_by_name[name]
    length_delimited = f.type in (f.TYPE_MESSAGE, f.TYPE_STRING, f.TYPE_BYTES)
    return uvarint((f.number << 3) | (2 if length_delimited else 0))


def ld(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key + uvarint(len(payload)) + payload


def string_field(key: bytes, s: str) -> bytes:
    return ld(key, s.encode("utf-8")) if s else b""


# Zero scalars and empty strings are left out, as protobuf's own serializer leaves them
# out: an encoded event is byte for byte what SerializeToString gives for it.
def opt(key: bytes, v: int) -> bytes:
    return key + uvarint(v) if v else b""


class Cache(dict):
    """A dict that forgets everything when it grows past ``limit`` (values are cheap to
    rebuild; a bound keeps a long session's memory flat)."""

    def __init__(self, build: Callable, limit: int = 8192):
        super().__init__()
        self.build = build
        self.limit = limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        v = self[key] = self.build(key)
        return v


def keys(msg: type, *names: str) -> tuple[bytes, ...]:
    return tuple(tag(msg, n) for n in names)


_LEN = [uvarint(n) for n in range(1024)]


def length(n: int) -> bytes:
    """A length prefix (small ones precomputed)."""
    return _LEN[n] if n < 1024 else uvarint(n)


def field_cache(key: bytes, encode: Callable = uvarint, limit: int = 8192) -> Cache:
    """value -> key + encode(value), built once per value (nothing for zero)."""
    return Cache(lambda v: key + encode(v) if v else b"", limit)
