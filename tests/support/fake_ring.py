"""A memfd laid out as the kernel maps a BPF ring buffer, for MappedRing's tests."""
from __future__ import annotations

import mmap
import os
import struct

PAGE = mmap.PAGESIZE


class FakeKernelRing:
    """A memfd laid out as a BPF ring buffer map is mapped: consumer page, producer page,
    data pages (the kernel maps them twice in a row; here both copies are written)."""

    def __init__(self, size: int = 2 * PAGE):
        self.size = size
        self.fd = os.memfd_create("gewt-ring")
        os.ftruncate(self.fd, 2 * PAGE + 2 * size)
        self.mm = mmap.mmap(self.fd, 2 * PAGE + 2 * size)
        self.prod = 0

    def cons(self) -> int:
        return struct.unpack_from("<Q", self.mm, 0)[0]

    def _put(self, pos: int, data: bytes) -> None:
        for copy in (0, self.size):
            for i, b in enumerate(data):
                self.mm[2 * PAGE + copy + (pos + i) % self.size] = b

    def reserve(self, payload: bytes, busy: bool = False, discard: bool = False) -> int:
        pos = self.prod
        word = len(payload) | (1 << 31 if busy else 0) | (1 << 30 if discard else 0)
        self._put(pos, struct.pack("<II", word, 0) + payload)
        self.prod += (len(payload) + 8 + 7) & ~7
        struct.pack_into("<Q", self.mm, PAGE, self.prod)
        return pos

    def commit(self, pos: int) -> None:
        word = struct.unpack_from("<I", self.mm, 2 * PAGE + pos % self.size)[0] & ~(1 << 31)
        self._put(pos, struct.pack("<I", word))

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)
