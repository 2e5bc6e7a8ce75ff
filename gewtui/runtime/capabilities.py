"""Capability negotiation (SPEC §2): GetRuntimeInfo, GetCapabilities, VerifyCompatibility.

Every capability lands in exactly one of three states — not supported, supported but risky,
fully supported — with a one-line reason. Tracepoint capabilities are checked against the
live tracefs format (fields present with the sizes the probe's record layout assumes); raw
tracepoints against the argument types in the kernel's BTF; struct offsets against BTF.
Nothing here loads anything into the kernel, so ``gew runtime info`` runs without root and
reports what a non-root user can see.

The probe units declare their needs with ``TracepointNeed``/``BtfNeed`` (gewtui.kernel.probes);
this module only evaluates needs it is handed, so the runtime layer does not import the kernel.
"""
from __future__ import annotations

import gzip
import os
import platform
import re
import sys
from dataclasses import dataclass
from typing import Iterable

from gewtui import __version__
from gewtui.errors import CapabilityError
from gewtui.pb import session_pb2
from gewtui.runtime import mounts, privileges
from gewtui.runtime.tracefs import FormatError, Tracefs

NOT_SUPPORTED = session_pb2.NOT_SUPPORTED
SUPPORTED_RISKY = session_pb2.SUPPORTED_RISKY
FULLY_SUPPORTED = session_pb2.FULLY_SUPPORTED
STATE_WORDS = {NOT_SUPPORTED: "not supported", SUPPORTED_RISKY: "supported but risky",
               FULLY_SUPPORTED: "fully supported"}


@dataclass(frozen=True)
class TracepointNeed:
    """A tracepoint a probe attaches to. For a perf tracepoint, ``fields`` lists (name, size)
    pairs its record layout reads; for a raw tracepoint, ``raw_args`` the argument types."""

    group: str
    name: str
    fields: tuple[tuple[str, int], ...] = ()
    raw_args: tuple[str, ...] = ()
    raw: bool = False

    @property
    def capability(self) -> str:
        return f"{'raw_tracepoint' if self.raw else 'tracepoint'}:{self.group}:{self.name}"


@dataclass(frozen=True)
class BtfNeed:
    """A kernel struct member whose offset a probe takes from BTF, passed to C as ``define``."""

    struct: str
    path: str
    define: str


@dataclass(frozen=True)
class Needs:
    """What one probe unit needs from the kernel."""

    unit: str
    tracepoints: tuple[TracepointNeed, ...]
    btf: tuple[BtfNeed, ...] = ()
    extra: tuple[str, ...] = ()      # further capability names (e.g. "ringbuf")

    def capability_names(self) -> list[str]:
        names = [t.capability for t in self.tracepoints]
        if self.btf:
            names.append(f"btf-offsets:{self.unit}")
        return names + list(self.extra)


# ---------------------------------------------------------------------------------------
# GetRuntimeInfo

def _headers() -> tuple[str, str]:
    """Where bcc finds kernel headers and which release they are."""
    build = f"/lib/modules/{platform.release()}/build"
    if os.path.exists(build):
        real = os.path.realpath(build)
        release = ""
        for cand in ("include/config/kernel.release", "include/generated/utsrelease.h"):
            try:
                with open(os.path.join(real, cand)) as f:
                    text = f.read()
            except OSError:
                continue
            m = re.search(r'"([^"]+)"', text) if cand.endswith(".h") else None
            release = m.group(1) if m else text.strip()
            break
        if not release:
            m = re.search(r"linux-headers-(\S+)", real)
            release = m.group(1) if m else ""
        return real, release
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return "/sys/kernel/kheaders.tar.xz", platform.release()
    return "", ""


def _bcc_version() -> str:
    try:
        import bcc  # heavy import, only here

        return getattr(bcc, "__version__", "unknown")
    except Exception:  # bcc missing or broken: report, never crash
        return ""


def get_runtime_info() -> session_pb2.RuntimeInfo:
    """GetRuntimeInfo: facts about this host and this process."""
    headers_path, headers_release = _headers()
    mt = mounts.mounted_types()
    tracefs = mounts.tracefs_mounted(mt)
    bpffs = mounts.bpffs_mounted(mt)
    caps = privileges.effective_caps()
    return session_pb2.RuntimeInfo(
        tool_version=__version__,
        kernel_release=platform.release(),
        machine=platform.machine(),
        btf=os.path.exists("/sys/kernel/btf/vmlinux"),
        bcc_version=_bcc_version(),
        headers_path=headers_path,
        headers_release=headers_release,
        headers_match_kernel=bool(headers_release) and headers_release == platform.release(),
        tracefs_mounted=tracefs is not None,
        bpffs_mounted=bpffs is not None,
        root=privileges.is_root(),
        python=sys.version.split()[0],
        tracefs_path=tracefs or "",
        bpffs_path=bpffs or "",
        cap_bpf=privileges.has_cap(privileges.CAP_BPF, caps),
        cap_sys_admin=privileges.has_cap(privileges.CAP_SYS_ADMIN, caps),
    )


# ---------------------------------------------------------------------------------------
# GetCapabilities

def _cap(name: str, state: int, reason: str, needed_by: Iterable[str] = ()) -> session_pb2.Capability:
    return session_pb2.Capability(name=name, state=state, reason=reason, needed_by=sorted(set(needed_by)))


def kernel_config() -> dict[str, str]:
    """CONFIG_* values from /proc/config.gz (empty when the kernel does not expose it)."""
    out: dict[str, str] = {}
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_"):
                    k, _, v = line.strip().partition("=")
                    out[k] = v
                elif line.startswith("# CONFIG_") and line.rstrip().endswith("is not set"):
                    out[line.split()[1]] = "n"
    except OSError:
        pass
    return out


def check_tracepoint(tf: Tracefs, need: TracepointNeed, btf=None) -> tuple[int, str]:
    """State and reason of one tracepoint need against tracefs (and BTF for raw ones)."""
    try:
        fmt = tf.read(need.group, need.name)
    except FormatError as e:
        return NOT_SUPPORTED, str(e)
    if need.raw:
        if btf is None:
            return NOT_SUPPORTED, "raw tracepoint arguments unknown: no BTF"
        try:
            args = btf.raw_tracepoint_args(need.name)
        except Exception as e:  # BTFError or malformed blob
            return NOT_SUPPORTED, f"no BTF prototype for raw tracepoint {need.name}: {e}"
        if need.raw_args and tuple(args[:len(need.raw_args)]) != need.raw_args:
            return NOT_SUPPORTED, f"arguments are ({', '.join(args)}), probe expects ({', '.join(need.raw_args)})"
        return FULLY_SUPPORTED, f"raw tracepoint args ({', '.join(args)}) match BTF"
    problems = []
    for fname, size in need.fields:
        f = fmt.fields.get(fname)
        if f is None:
            problems.append(f"field {fname} missing")
        elif f.size != size:
            problems.append(f"field {fname} is {f.size} bytes, probe expects {size}")
    if problems:
        return NOT_SUPPORTED, "; ".join(problems)
    return FULLY_SUPPORTED, f"format has the {len(need.fields)} fields the probe reads, sizes match"


def check_btf_offsets(btf, needs: Needs) -> tuple[int, str]:
    if btf is None:
        return NOT_SUPPORTED, "no kernel BTF: struct offsets cannot be resolved"
    missing = []
    for n in needs.btf:
        try:
            btf.member(n.struct, n.path)
        except Exception as e:
            missing.append(str(e))
    if missing:
        return NOT_SUPPORTED, missing[0]
    return FULLY_SUPPORTED, f"{len(needs.btf)} struct offsets resolved from the running kernel's BTF"


def _load_btf():
    try:
        from gewtui.runtime.btf import load_vmlinux

        return load_vmlinux()
    except Exception:
        return None


def _btf_enum_has(btf, enum: str, member: str) -> bool:
    try:
        return member in btf.enum(enum)
    except Exception:
        return False


def _builtin(cfg: dict[str, str], btf, option: str, func: str, module: str) -> tuple[bool, str]:
    v = cfg.get(option)
    if v in ("y", "m"):
        return True, f"{option}={v}"
    if v == "n":
        return False, f"{option} is not set"
    if btf is not None and btf.has_func(func):
        return True, f"{func} present in kernel BTF"
    if os.path.exists(f"/sys/module/{module}"):
        return True, f"module {module} loaded"
    return False, f"neither {option} nor {func} found"


def platform_capabilities(info: session_pb2.RuntimeInfo, btf, cfg: dict[str, str]
                          ) -> list[session_pb2.Capability]:
    """Capabilities that do not depend on one probe: privileges, mounts, BTF, ring buffer,
    headers, tc, pinning, program stats, kprobes."""
    caps = []
    if info.root and not privileges.missing_caps():
        caps.append(_cap("privileges", FULLY_SUPPORTED, "root with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"))
    elif info.root:
        caps.append(_cap("privileges", NOT_SUPPORTED, f"root but lacking {', '.join(privileges.missing_caps())}"))
    else:
        caps.append(_cap("privileges", NOT_SUPPORTED, "not root: loading eBPF programs needs root"))
    if info.tracefs_mounted:
        caps.append(_cap("tracefs", FULLY_SUPPORTED, f"mounted at {info.tracefs_path}"))
    elif info.root:
        caps.append(_cap("tracefs", FULLY_SUPPORTED, f"not mounted; gew mounts it at {mounts.TRACEFS} on start"))
    else:
        caps.append(_cap("tracefs", NOT_SUPPORTED, "not mounted (and mounting needs root)"))
    if btf is not None:
        caps.append(_cap("btf", FULLY_SUPPORTED, f"/sys/kernel/btf/vmlinux parsed ({len(btf.types)} types)"))
    else:
        caps.append(_cap("btf", NOT_SUPPORTED, "/sys/kernel/btf/vmlinux missing or unreadable"))
    if btf is not None and _btf_enum_has(btf, "bpf_map_type", "BPF_MAP_TYPE_RINGBUF"):
        if info.bcc_version:
            caps.append(_cap("ringbuf", FULLY_SUPPORTED, f"BPF_MAP_TYPE_RINGBUF in kernel, bcc {info.bcc_version} maps it"))
        else:
            caps.append(_cap("ringbuf", NOT_SUPPORTED, "kernel has BPF ring buffers but bcc is not importable"))
    else:
        caps.append(_cap("ringbuf", NOT_SUPPORTED, "kernel lacks BPF_MAP_TYPE_RINGBUF (needs 5.8+)"))
    if not info.bcc_version:
        caps.append(_cap("bcc", NOT_SUPPORTED, "python bcc not importable (install python3-bpfcc)"))
    else:
        caps.append(_cap("bcc", FULLY_SUPPORTED, f"bcc {info.bcc_version}"))
    if not info.headers_path:
        caps.append(_cap("kernel-headers", NOT_SUPPORTED, "no headers under /lib/modules/<release>/build: bcc cannot compile"))
    elif info.headers_match_kernel:
        caps.append(_cap("kernel-headers", FULLY_SUPPORTED, f"{info.headers_release} matches the running kernel"))
    else:
        caps.append(_cap("kernel-headers", FULLY_SUPPORTED,
                         f"headers are {info.headers_release or 'unknown'}, kernel {info.kernel_release}: used only "
                         "for UAPI definitions; no struct layout is taken from them (tracefs formats and BTF are)"))
    ok, why = _builtin(cfg, btf, "CONFIG_NET_SCH_INGRESS", "clsact_init", "sch_ingress")
    caps.append(_cap("clsact", FULLY_SUPPORTED if ok else NOT_SUPPORTED, why, ["intervention"]))
    ok, why = _builtin(cfg, btf, "CONFIG_NET_CLS_BPF", "cls_bpf_classify", "cls_bpf")
    if ok and btf is not None and not _btf_enum_has(btf, "bpf_prog_type", "BPF_PROG_TYPE_SCHED_CLS"):
        ok, why = False, "BPF_PROG_TYPE_SCHED_CLS missing"
    caps.append(_cap("cls_bpf-direct-action", FULLY_SUPPORTED if ok else NOT_SUPPORTED,
                     why + ("; direct-action since 4.4" if ok else ""), ["intervention"]))
    if info.bpffs_mounted and info.root:
        caps.append(_cap("bpffs-pinning", FULLY_SUPPORTED, f"bpffs mounted at {info.bpffs_path}, writable by root", ["session"]))
    elif info.root:
        caps.append(_cap("bpffs-pinning", FULLY_SUPPORTED, f"bpffs not mounted; gew mounts it at {mounts.BPFFS} on start", ["session"]))
    elif info.bpffs_mounted:
        caps.append(_cap("bpffs-pinning", NOT_SUPPORTED, "bpffs mounted but pinning needs root", ["session"]))
    else:
        caps.append(_cap("bpffs-pinning", NOT_SUPPORTED, "bpffs not mounted (and mounting needs root)", ["session"]))
    if os.path.exists("/proc/sys/kernel/bpf_stats_enabled"):
        caps.append(_cap("bpf-prog-stats", FULLY_SUPPORTED, "BPF_ENABLE_STATS / kernel.bpf_stats_enabled available; "
                                                           "run_time_ns read from prog fdinfo"))
    else:
        caps.append(_cap("bpf-prog-stats", NOT_SUPPORTED, "kernel.bpf_stats_enabled missing: no program run time"))
    kp = cfg.get("CONFIG_KPROBES")
    if kp in ("y",) or os.path.exists(os.path.join(info.tracefs_path or mounts.TRACEFS, "kprobe_events")):
        caps.append(_cap("kprobes", FULLY_SUPPORTED, "kprobes available (not used: every probe is a tracepoint)"))
    else:
        caps.append(_cap("kprobes", NOT_SUPPORTED, "CONFIG_KPROBES not set; not needed: every probe is a tracepoint"))
    return caps


def get_capabilities(needs: Iterable[Needs] = (), tracefs: Tracefs | None = None,
                     info: session_pb2.RuntimeInfo | None = None, btf=None,
                     extra: Iterable[session_pb2.Capability] = ()) -> session_pb2.CapabilityReport:
    """GetCapabilities: runtime info plus every capability (platform + each probe need),
    each in exactly one state. ``extra`` lets probe units add capabilities they judge
    themselves (e.g. tcp_send_reset's enum handling)."""
    info = info or get_runtime_info()
    btf = btf if btf is not None else _load_btf()
    tf = tracefs or Tracefs(info.tracefs_path or None)
    report = session_pb2.CapabilityReport(runtime=info)
    caps = platform_capabilities(info, btf, kernel_config())
    seen: dict[str, session_pb2.Capability] = {}
    for n in needs:
        for tp in n.tracepoints:
            c = seen.get(tp.capability)
            if c is None:
                state, reason = check_tracepoint(tf, tp, btf)
                c = seen[tp.capability] = _cap(tp.capability, state, reason)
            c.needed_by.append(n.unit)
        if n.btf:
            state, reason = check_btf_offsets(btf, n)
            seen[f"btf-offsets:{n.unit}"] = _cap(f"btf-offsets:{n.unit}", state, reason, [n.unit])
        for name in n.extra:
            for c in caps:
                if c.name == name and n.unit not in c.needed_by:
                    c.needed_by.append(n.unit)
    for c in extra:
        seen[c.name] = c
    caps.extend(seen.values())
    report.capabilities.extend(caps)
    set_verdict(report)
    return report


def set_verdict(report: session_pb2.CapabilityReport) -> None:
    """The report's verdict: the worst state among the capabilities something needs
    (informational ones such as kprobes do not count), and the first one in that state."""
    needed = [c for c in report.capabilities if c.needed_by]
    worst = min((c.state for c in needed), default=FULLY_SUPPORTED)
    report.verdict = worst
    bad = [c for c in needed if c.state == worst]
    report.verdict_reason = ("every capability fully supported" if worst == FULLY_SUPPORTED
                             else f"{bad[0].name}: {bad[0].reason}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""))


# ---------------------------------------------------------------------------------------
# VerifyCompatibility

def verify_compatibility(report: session_pb2.CapabilityReport, needed: Iterable[str],
                         allow_risky: bool = False) -> session_pb2.CapabilityState:
    """VerifyCompatibility: the worst state among ``needed``. Raises CapabilityError when one
    is not supported, or risky without ``allow_risky`` (which only the local command line
    may set). A needed name absent from the report counts as not supported."""
    by_name = {c.name: c for c in report.capabilities}
    worst = FULLY_SUPPORTED
    for name in needed:
        c = by_name.get(name)
        if c is None:
            raise CapabilityError(f"capability {name} is not supported: not in the capability report")
        if c.state == NOT_SUPPORTED:
            raise CapabilityError(f"capability {name} is not supported: {c.reason}")
        if c.state == SUPPORTED_RISKY and not allow_risky:
            raise CapabilityError(f"capability {name} is supported but risky ({c.reason}); "
                                  f"pass --allow-risky on the local command line to accept it")
        worst = min(worst, c.state)
    return worst
