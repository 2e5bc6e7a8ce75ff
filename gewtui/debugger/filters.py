"""Flow filters: which flows the operator wants to see, step through, or keep in an export.

Place in the pipeline: the view builder asks ``FlowFilter.matches`` for each flow snapshot
(the flow tree and ``flows`` show only matches; ``step`` with a filter set skips events that
touch no matching flow); ``gew export --filter`` applies the same filter to a recording
after the fact (gewtui.debugger.export). One spelling for both:

    dst PREFIX | src PREFIX | addr PREFIX     the peer / local / either address is inside PREFIX
    port N | sport N | dport N                any / local / peer port
    netns INODE|NAME                          the flow's network namespace
    template ID                               a template matched on the flow
    phase emerged|evolving|diverged|terminated|live
    cgroup PATH                               a process of the flow is in this cgroup or below it
    container ID|UNIT                         ... in this container (id prefix) or systemd unit

Terms of one kind combine with OR, different kinds with AND (as session scopes do).
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Iterable

from gewtui.debugger import names
from gewtui.errors import UsageError
from gewtui.pb import model_pb2

KINDS = ("dst", "src", "addr", "port", "sport", "dport", "netns", "template", "phase", "cgroup",
         "container")

_LIVE = (model_pb2.EMERGED, model_pb2.EVOLVING)


@dataclass(frozen=True)
class Term:
    kind: str
    value: str

    def text(self) -> str:
        return f"{self.kind} {self.value}"


def parse_term(text: str) -> Term:
    """``dst 10.0.0.0/8`` or ``dst=10.0.0.0/8``."""
    t = text.strip().replace("=", " ", 1)
    parts = t.split(None, 1)
    if len(parts) != 2:
        raise UsageError(f"a filter is KIND VALUE, e.g. 'dst 10.0.0.0/8' (got {text!r})")
    kind, value = parts[0].lower(), parts[1].strip()
    if kind not in KINDS:
        raise UsageError(f"unknown filter kind {kind!r} (one of: {', '.join(KINDS)})")
    if kind in ("dst", "src", "addr"):
        value = str(names.parse_network(value))
    elif kind in ("port", "sport", "dport"):
        if not names.is_number(value) or not 0 < int(value) < 65536:
            raise UsageError(f"not a port: {ascii(value)[:40]}")
    elif kind == "phase":
        value = "live" if value.lower() == "live" else names.phase_name(names.parse_phase(value))
    elif kind == "netns":
        _netns_inode(value)
    elif kind == "cgroup":
        if not value.startswith("/") or len(value) > 4096:
            raise UsageError(f"a cgroup is a path from the cgroup v2 root, e.g. /system.slice (got {value!r})")
        value = value.rstrip("/") or "/"
    elif kind == "container" and len(value) > 256:
        raise UsageError("a container id or unit name is at most 256 characters")
    return Term(kind, value)


def _netns_inode(value: str) -> int:
    if names.is_number(value):
        return int(value)
    # Validated as a name first: only /run/netns/<name> is ever looked at, so a filter
    # cannot be used to probe for files elsewhere ("../../etc/passwd").
    name = names.parse_netns_name(value)
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        raise UsageError(f"no network namespace named {name} (give its inode number)") from None


class FlowFilter:
    """An immutable conjunction of disjunctions over flow snapshots."""

    def __init__(self, terms: Iterable[Term] = ()) -> None:
        self.terms: tuple[Term, ...] = tuple(dict.fromkeys(terms))
        by_kind: dict[str, list[str]] = {}
        for term in self.terms:
            by_kind.setdefault(term.kind, []).append(term.value)
        self._nets = {k: [ipaddress.ip_network(v) for v in by_kind.get(k, [])]
                      for k in ("dst", "src", "addr")}
        self._ports = {k: {int(v) for v in by_kind.get(k, [])} for k in ("port", "sport", "dport")}
        self._netns = {_netns_inode(v) for v in by_kind.get("netns", [])}
        self._templates = set(by_kind.get("template", []))
        self._cgroups = by_kind.get("cgroup", [])
        self._containers = by_kind.get("container", [])
        self._phases: set[int] = set()
        for v in by_kind.get("phase", []):
            self._phases.update(_LIVE if v == "live" else (names.parse_phase(v),))

    @classmethod
    def parse(cls, exprs: Iterable[str]) -> "FlowFilter":
        return cls(parse_term(e) for e in exprs)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def with_term(self, term: Term) -> "FlowFilter":
        return FlowFilter(self.terms + (term,))

    def without_kind(self, kind: str) -> "FlowFilter":
        return FlowFilter(t for t in self.terms if t.kind != kind)

    def describe(self) -> list[str]:
        return [t.text() for t in self.terms]

    def matches(self, flow: model_pb2.FlowSnapshot) -> bool:
        if not self.terms:
            return True
        if self._phases and flow.phase not in self._phases:
            return False
        if self._templates and not self._templates.intersection(flow.templates):
            return False
        if self._netns and flow.netns not in self._netns:
            return False
        if self._cgroups and not any(p == c or c == "/" or p.startswith(c + "/")
                                     for p in flow.cgroups for c in self._cgroups):
            return False
        if self._containers and not any(x.startswith(c) for x in flow.containers for c in self._containers) \
                and not any(u == c for u in flow.units for c in self._containers):
            return False
        local, peer, lports, pports = _endpoints(flow)
        if self._nets["dst"] and not _any_in(peer, self._nets["dst"]):
            return False
        if self._nets["src"] and not _any_in(local, self._nets["src"]):
            return False
        if self._nets["addr"] and not _any_in(local | peer, self._nets["addr"]):
            return False
        if self._ports["port"] and not self._ports["port"] & (lports | pports):
            return False
        if self._ports["sport"] and not self._ports["sport"] & lports:
            return False
        if self._ports["dport"] and not self._ports["dport"] & pports:
            return False
        return True


def _endpoints(flow: model_pb2.FlowSnapshot) -> tuple[set[bytes], set[bytes], set[int], set[int]]:
    """Local and peer addresses and ports of the flow and all its member sockets."""
    local = {flow.local_addr} if flow.local_addr else set()
    peer = {flow.peer_addr} if flow.peer_addr else set()
    pports = {flow.peer_port} if flow.peer_port else set()
    lports: set[int] = set()
    for m in flow.members:
        if m.tuple.saddr:
            local.add(m.tuple.saddr)
        if m.tuple.daddr:
            peer.add(m.tuple.daddr)
        if m.tuple.sport:
            lports.add(m.tuple.sport)
        if m.tuple.dport:
            pports.add(m.tuple.dport)
    return local, peer, lports, pports


def _any_in(addrs: set[bytes], nets: list) -> bool:
    for raw in addrs:
        if len(raw) not in (4, 16):
            continue
        ip = ipaddress.ip_address(raw)
        if any(ip.version == n.version and ip in n for n in nets):
            return True
    return False
