"""Kernel text symbols: a drop site's address (skb:kfree_skb's location) as function+offset.

Read once from /proc/kallsyms, while a live session opens (elsewhere on the first address
to resolve). Root sees real addresses; with kptr_restrict hiding them every address reads 0
and nothing resolves. Only text symbols (types t/T) are kept, sorted for bisection;
modules' symbols carry their module ("fn+0x1c [nf_tables]"). The live session writes the name into each SkbDrop event
(``location_symbol``), so a replay on another machine shows the same site.
"""
from __future__ import annotations

import bisect
import os

KALLSYMS = "/proc/kallsyms"
MAX_BYTES = 64 << 20          # a kallsyms larger than this is not read (bounded work)
CACHE_CAP = 65536
MAX_OFFSET = 1 << 20          # farther than this past a symbol: not that function


class Kallsyms:
    def __init__(self, path: str = KALLSYMS):
        self.path = path
        self._addrs: list[int] | None = None
        self._names: list[str] = []
        self._cache: dict[int, str] = {}
        self.error = ""

    def _load(self) -> None:
        self._addrs = []
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as e:
            self.error = f"{self.path}: {e.strerror or e}"
            return
        if len(data) > MAX_BYTES:
            self.error = f"{self.path}: larger than {MAX_BYTES} bytes"
            return
        rows = []
        for line in data.decode("ascii", "replace").splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in ("t", "T"):
                continue
            try:
                a = int(parts[0], 16)
            except ValueError:
                continue
            if a:
                name = parts[2] + (f" {parts[3]}" if len(parts) > 3 else "")
                rows.append((a, name))
        if not rows:
            self.error = f"{self.path}: no addresses (kptr_restrict hides them)"
            return
        rows.sort()
        self._addrs = [a for a, _ in rows]
        self._names = [n for _, n in rows]

    def load(self) -> None:
        """Read the table now, if it is not read yet: a session does it while it opens, so
        the first drop on a busy box does not pay it."""
        if self._addrs is None:
            self._load()

    def resolve(self, addr: int) -> str:
        """"kfree_skb_reason+0x4f", or "" when it cannot be named."""
        if not addr:
            return ""
        hit = self._cache.get(addr)
        if hit is not None:
            return hit
        if self._addrs is None:
            self._load()
        out = ""
        i = bisect.bisect_right(self._addrs, addr) - 1 if self._addrs else -1
        if i >= 0 and addr - self._addrs[i] < MAX_OFFSET:
            name, _, mod = self._names[i].partition(" ")
            out = f"{name}+{addr - self._addrs[i]:#x}" + (f" {mod}" if mod else "")
        if len(self._cache) < CACHE_CAP:
            self._cache[addr] = out
        return out

    def annotate(self, ev) -> None:
        """Name an SkbDrop event's location in place (before it is recorded)."""
        if ev.WhichOneof("body") == "skb_drop":
            b = ev.skb_drop
            if b.location and not b.location_symbol:
                b.location_symbol = self.resolve(b.location)
