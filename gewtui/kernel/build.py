"""Builds what bcc compiles for one session: the capability report for the probe units,
the choice of units that can run, the concatenated C source and its ``-D`` flags (BTF
offsets of the running kernel and the plane's tunables); and loads it (``load_bpf``, and
``load_retrying`` for each program).

Pure Python; the only kernel facts read are tracefs formats and /sys/kernel/btf/vmlinux.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterable

from gewtui.kernel.probes import UNITS, tcp_events
from gewtui.kernel.probes.base import CORE_BTF, ProbeUnit
from gewtui.pb import session_pb2
from gewtui.resources import bpf_source
from gewtui.runtime import capabilities
from gewtui.runtime.btf import BTF, BTFError, load_vmlinux
from gewtui.runtime.tracefs import Tracefs

COMMON_HEADER = "gew_common.h"


def _btf_or_none() -> BTF | None:
    try:
        return load_vmlinux()
    except BTFError:
        return None


def capability_report(units: Iterable[ProbeUnit] = UNITS, tracefs: Tracefs | None = None,
                      info: session_pb2.RuntimeInfo | None = None, btf: BTF | None = None
                      ) -> session_pb2.CapabilityReport:
    """GetCapabilities for the given probe units: platform capabilities, every tracepoint
    each unit needs, each unit's BTF offsets, and tcp_send_reset's enum handling."""
    units = list(units)
    info = info or capabilities.get_runtime_info()
    tf = tracefs or Tracefs(info.tracefs_path or None)
    btf = btf if btf is not None else _btf_or_none()
    extra = []
    if any(u.name == tcp_events.UNIT.name for u in units):
        extra.append(tcp_events.reset_enum_capability(tf))
    report = capabilities.get_capabilities([u.needs for u in units], tracefs=tf, info=info, btf=btf, extra=extra)
    # layout checks a unit makes beyond member offsets fold into its btf-offsets capability
    if btf is not None:
        for u in units:
            if u.self_check is None:
                continue
            why = u.self_check(btf)
            for c in report.capabilities:
                if c.name == f"btf-offsets:{u.name}" and why and c.state != capabilities.NOT_SUPPORTED:
                    c.state, c.reason = capabilities.NOT_SUPPORTED, why
    capabilities.set_verdict(report)
    return report


def runnable(units: Iterable[ProbeUnit], report: session_pb2.CapabilityReport,
             allow_risky: bool = False) -> tuple[list[ProbeUnit], dict[str, str]]:
    """The units that can run, and {unit: reason} for the others. A unit whose dependency
    cannot run cannot run either."""
    ok: list[ProbeUnit] = []
    skipped: dict[str, str] = {}
    for u in units:
        why = u.can_run(report, allow_risky)
        if why is None:
            missing = [d for d in u.depends if d in skipped or d not in {x.name for x in ok}]
            if missing:
                why = f"needs probe {missing[0]}" + (f" ({skipped[missing[0]]})" if missing[0] in skipped else "")
        if why is None:
            ok.append(u)
        else:
            skipped[u.name] = why
    return ok, skipped


def source(units: Iterable[ProbeUnit]) -> str:
    """gew_common.h followed by each unit's C file: one compilation unit, so every unit
    shares the ring buffer, the scope maps and the socket table."""
    parts = []
    for name in [COMMON_HEADER] + [u.source for u in units]:
        text = bpf_source(name).read_text()
        parts.append(f"/* ---- {name} ---- */\n#line 1 \"{name}\"\n{text}")
    return "\n".join(parts)


def offset_flags(units: Iterable[ProbeUnit], btf: BTF) -> list[str]:
    """-D flags with the byte offset of every struct member the units read, and the
    units' other BTF-derived constants (bitfield positions)."""
    flags: dict[str, int] = {}
    needs = list(CORE_BTF)
    for u in units:
        needs.extend(u.btf)
    for n in needs:
        off = btf.member(n.struct, n.path).offset
        prev = flags.get(n.define)
        if prev is not None and prev != off:
            raise BTFError(f"{n.define} resolves to {prev} and {off}")
        flags[n.define] = off
    for u in units:
        if u.btf_flags is not None:
            flags.update(u.btf_flags(btf))
    return [f"-D{k}={v}" for k, v in sorted(flags.items())]


def tunable_flags(**values: int) -> list[str]:
    return [f"-D{k}={int(v)}" for k, v in values.items()]


def load_bpf(**kw: Any) -> Any:
    """``bcc.BPF(**kw)``, without its leak: when the kernel refuses a map while bcc loads a
    module (too large, no memory, not permitted), bcc raises but keeps the descriptors of
    the maps it already made. They are closed here, so a process that lives on (gew-tui,
    a drop refused mid-session) holds nothing of the failed load."""
    from bcc import BPF  # heavy; only when loading

    before = _bpf_fds()
    try:
        return BPF(**kw)
    except BaseException:
        for fd in _bpf_fds() - before:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


LOAD_TRIES = 5
EAGAIN = "Resource temporarily unavailable"    # how bcc's load error ends for it


def load_retrying(load, name: bytes, kind: int, tries: int = LOAD_TRIES, pause_s: float = 0.05):
    """``load(name, kind)`` (bcc's load_func), tried again when the kernel answers EAGAIN:
    the verifier gives up with it when a signal is pending, which a tracer or profiler
    attaching to this process causes (a stop per thread), and the same load then passes.
    Any other error, or EAGAIN ``tries`` times (a sampling profiler that stops the process
    hundreds of times a second interrupts every try), is raised as it came."""
    for attempt in range(tries):
        try:
            return load(name, kind)
        except Exception as e:
            if attempt == tries - 1 or EAGAIN not in str(e):
                raise
            time.sleep(pause_s)
    raise AssertionError("unreachable")


def _bpf_fds() -> set[int]:
    """This process's file descriptors for BPF maps, programs and links."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(f"/proc/self/fd/{name}").startswith("anon_inode:bpf"):
                out.add(int(name))
    return out
