"""Cgroup ids as names: the cgroup v2 path of an id (what bpf_get_current_cgroup_id and
sock_diag report), and the container or systemd unit the path shows.

The id of a cgroup v2 directory is its inode number, so a walk of the cgroup2 mount (found in
/proc/self/mountinfo) maps ids to paths. The walk is bounded (directories, depth), never
follows a link, and is redone at most once a second for an id it did not find (a cgroup made
since). Container ids come from the path as the runtimes name them: docker-<id>.scope,
/docker/<id>, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope; the unit is
the innermost systemd unit (a .service or .scope, or .socket/.mount) of the path.
"""
from __future__ import annotations

import os
import re
import time

MAX_DIRS = 100_000
MAX_DEPTH = 32
_CONTAINER = re.compile(r"(?:^|[/-])(?:docker|cri-containerd|crio|libpod)[-/]([0-9a-f]{12,64})(?:\.scope)?$")
_UNIT = re.compile(r"^[\w@.:\\-]+\.(?:service|scope|socket|mount|slice)$")


def cgroup2_root(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    try:
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == ["cgroup2"]:
                    return left.split()[4]
    except OSError:
        pass
    return None


def describe(path: str) -> tuple[str, str]:
    """(container id, systemd unit) a cgroup path shows; empty strings when none."""
    container = unit = ""
    for part in [p for p in path.split("/") if p]:
        m = _CONTAINER.search(part) or _CONTAINER.search("/" + part)
        if m:
            container = m.group(1)
        if _UNIT.match(part) and not part.endswith(".slice"):
            unit = part
    if not container:
        m = re.search(r"/docker/([0-9a-f]{12,64})(?:/|$)", path)
        if m:
            container = m.group(1)
    return container, unit


class CgroupMap:
    def __init__(self, root: str | None = None):
        self.root = root if root is not None else cgroup2_root()
        self._paths: dict[int, str] = {}
        self._walked = 0.0

    def _walk(self) -> None:
        self._walked = time.monotonic()
        if not self.root:
            return
        seen = 0
        stack = [(self.root, "/", 0)]
        while stack and seen < MAX_DIRS:
            d, rel, depth = stack.pop()
            try:
                st = os.stat(d, follow_symlinks=False)
                self._paths[st.st_ino] = rel
                it = os.scandir(d)
            except OSError:
                continue
            seen += 1
            with it:
                for e in it:
                    if depth < MAX_DEPTH and e.is_dir(follow_symlinks=False):
                        stack.append((e.path, rel.rstrip("/") + "/" + e.name, depth + 1))

    def path(self, cid: int) -> str:
        """The cgroup's path ("" when unknown)."""
        p = self._paths.get(cid)
        if p is None and time.monotonic() - self._walked >= 1.0:
            self._walk()
            p = self._paths.get(cid)
        return p or ""
