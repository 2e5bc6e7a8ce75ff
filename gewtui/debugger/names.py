"""Names and units the debugger speaks: TCP states, lifecycle phases, addresses, durations.

Place in the pipeline: shared by the command parser (to read what the operator typed) and
the view builder (to print what the engine holds), so both directions use one spelling.
Pure functions over the protobuf enums; nothing here knows about flows or engines.
"""
from __future__ import annotations

import ipaddress
import re

from gewtui import addresses
from gewtui.errors import UsageError
from gewtui.pb import events_pb2, model_pb2

# "TCP_ESTABLISHED" -> "ESTABLISHED": the prefix only repeats what the column says.
TCP_STATES: dict[str, int] = {
    name[4:]: value
    for name, value in events_pb2.TcpState.items()
    if name.startswith("TCP_") and value
}
PHASES: dict[str, int] = {
    name.lower(): value for name, value in model_pb2.FlowPhase.items() if value
}
LAYERS: dict[int, str] = {v: k for k, v in model_pb2.ReasonLayer.items() if v}


# What the command language accepts as a number: ASCII digits only (str.isdigit() is also
# true for "²", which int() refuses), and few enough that int() never refuses the length.
_NUMBER = re.compile(r"[0-9]{1,20}", re.ASCII)
# A namespace name as `ip netns` makes one: a single file name under /run/netns.
_NETNS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", re.ASCII)


def is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text))


def parse_netns_name(text: str) -> str:
    """A network namespace name, refused unless it is one plain file name (no '/', no
    leading '.', no spaces or control characters): never a path."""
    if not _NETNS.fullmatch(text):
        raise UsageError(f"not a network namespace name: {ascii(text)[:40]} (letters, digits, "
                         "'_', '-', '.'; at most 64)")
    return text


def tcp_state_name(value: int) -> str:
    for name, v in TCP_STATES.items():
        if v == value:
            return name
    return "-" if not value else str(value)


def parse_tcp_state(text: str) -> int:
    """Accept ``TCP_CLOSE``, ``CLOSE``, ``close`` or the kernel's number."""
    t = text.strip().upper()
    if t.startswith("TCP_"):
        t = t[4:]
    if is_number(t) and int(t) in TCP_STATES.values():
        return int(t)
    if t in TCP_STATES:
        return TCP_STATES[t]
    raise UsageError(f"unknown TCP state {text!r} (one of: {', '.join(TCP_STATES)})")


def phase_name(value: int) -> str:
    for name, v in PHASES.items():
        if v == value:
            return name
    return "unknown"


def parse_phase(text: str) -> int:
    t = text.strip().lower()
    aliases = {"live": "evolving", "emerge": "emerged", "evolve": "evolving",
               "diverge": "diverged", "terminate": "terminated", "closed": "terminated"}
    t = aliases.get(t, t)
    if t in PHASES:
        return PHASES[t]
    raise UsageError(f"unknown lifecycle phase {text!r} (one of: {', '.join(PHASES)})")


def addr_text(raw: bytes) -> str:
    """An address in a view: "-" for none (gewtui.addresses writes the address)."""
    return addresses.addr_text(raw) or "-"


def endpoint_text(raw: bytes, port: int) -> str:
    a = addr_text(raw)
    return addresses.endpoint_text(a, port) if port else a


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"not an address or prefix: {text!r}") from None


_DURATION = re.compile(r"^([0-9]*\.?[0-9]+)\s*(ns|us|µs|ms|s|m|h)?$")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text: str) -> int:
    """``2.5s`` -> 2_500_000_000; a bare number is seconds (what people type after ``+``)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"not a duration: {text!r} (e.g. 2.5s, 300ms, 1m)")
    return int(float(m.group(1)) * _UNIT_NS[m.group(2) or "s"])


def duration_text(ns: int) -> str:
    """Short, fixed-precision rendering for timelines: 123µs, 4.000ms, 2.500s, 1m03.2s."""
    if ns < 0:
        return "-" + duration_text(-ns)
    s = ns / 1e9
    if s < 1e-3:
        return f"{ns / 1e3:.0f}µs"
    if s < 1:
        return f"{ns / 1e6:.3f}ms"
    if s < 60:
        return f"{s:.3f}s"
    m, rest = divmod(s, 60)
    return f"{int(m)}m{rest:04.1f}s"


def size_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def drop_reason_matches(wanted: str, reason_name: str) -> bool:
    """``QDISC_DROP`` matches ``SKB_DROP_REASON_QDISC_DROP`` and the bare name."""
    w = wanted.strip().upper()
    r = reason_name.upper()
    return r == w or r.removeprefix("SKB_DROP_REASON_") == w.removeprefix("SKB_DROP_REASON_")
