"""tracefs and bpffs: find them mounted, mount them when root and they are not, or refuse
with one line saying what is missing.

bcc reads tracepoint formats from tracefs; sessions pin their maps on bpffs. Both are
mounted at their standard places only, never elsewhere.
"""
from __future__ import annotations

import os
import subprocess

from gewtui.errors import GewError, EX_UNAVAILABLE

TRACEFS = "/sys/kernel/tracing"
BPFFS = "/sys/fs/bpf"


def mounted_types(mounts_path: str = "/proc/self/mounts") -> dict[str, str]:
    """{mount point: fs type} from /proc/self/mounts."""
    out: dict[str, str] = {}
    try:
        with open(mounts_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out[parts[1]] = parts[2]
    except OSError:
        pass
    return out


def tracefs_mounted(mounts: dict[str, str] | None = None) -> str | None:
    """Mount point of tracefs (the standard one first), or None."""
    m = mounted_types() if mounts is None else mounts
    for p in (TRACEFS, "/sys/kernel/debug/tracing"):
        if m.get(p) == "tracefs":
            return p
    return None


def bpffs_mounted(mounts: dict[str, str] | None = None) -> str | None:
    m = mounted_types() if mounts is None else mounts
    return BPFFS if m.get(BPFFS) == "bpf" else None


def _mount(fstype: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    r = subprocess.run(["mount", "-t", fstype, fstype if fstype != "bpf" else "bpffs", target],
                       capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise GewError(f"cannot mount {fstype} on {target}: {msg[0] if msg else 'mount failed'}",
                       EX_UNAVAILABLE)


def ensure_mounted(tracefs: bool = True, bpffs: bool = True) -> None:
    """Mount tracefs/bpffs at their standard places if missing (needs root, so call after
    require_root); raise a one-line GewError when that is impossible."""
    if tracefs and tracefs_mounted() is None:
        _mount("tracefs", TRACEFS)
    if bpffs and bpffs_mounted() is None:
        _mount("bpf", BPFFS)
