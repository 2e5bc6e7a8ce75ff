"""Privilege checks: every command that touches the kernel runs as root, or is refused with
one line and exit code 77 before it does anything.

Capabilities are read from ``/proc/self/status`` (CapEff) so the report can say precisely
what is missing (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN) instead of guessing.
"""
from __future__ import annotations

import os

from gewtui.errors import NotRootError

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAP_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
             CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}


def effective_caps(status_path: str = "/proc/self/status") -> int:
    """The CapEff bit mask of this process (0 when it cannot be read)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def has_cap(cap: int, mask: int | None = None) -> bool:
    m = effective_caps() if mask is None else mask
    return bool(m >> cap & 1)


def is_root() -> bool:
    return os.geteuid() == 0


def missing_caps(mask: int | None = None) -> list[str]:
    """Names of the capabilities the probes need that this process lacks. Tracing programs
    need CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN on old kernels); tc needs CAP_NET_ADMIN."""
    m = effective_caps() if mask is None else mask
    missing = []
    if not (has_cap(CAP_SYS_ADMIN, m) or (has_cap(CAP_BPF, m) and has_cap(CAP_PERFMON, m))):
        missing += [CAP_NAMES[c] for c in (CAP_BPF, CAP_PERFMON) if not has_cap(c, m)]
    if not has_cap(CAP_NET_ADMIN, m):
        missing.append("CAP_NET_ADMIN")
    return missing


def require_root(command: str) -> None:
    """Refuse a kernel-touching command unless running as root with the capabilities it needs."""
    if not is_root():
        raise NotRootError(f"{command} needs root (it loads eBPF programs into the kernel); "
                           f"run it with sudo")
    missing = missing_caps()
    if missing:
        raise NotRootError(f"{command} needs {', '.join(missing)}, which this root process lacks")
