"""Scope: what a session observes, parsed from `--scope`, resolved to kernel identities,
checked for closure, and watched while the session runs.

Kinds: netns=NAME ("host" or an `ip netns` name), iface=NAME (host) or iface=NETNS/IFACE,
cidr=PREFIX (v4 or v6), port=N. Kinds combine with AND, values of one kind with OR.
When neither netns= nor iface= is given, the location is the host namespace.

Closure: every interface of a scoped namespace (or every named interface) must be
covered. An interface that vanishes while the scope is resolved or attached makes the
observation incomplete, and an incomplete observation refuses to attach. Once running, an
interface disappearing is recorded as a ScopeChange event and the session keeps going.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Sequence

from gewtui.errors import ScopeError
from gewtui.kernel import netns as nsmod
from gewtui.kernel.plane_contract import ScopeFilter
from gewtui.pb import events_pb2, session_pb2

KINDS = ("netns", "iface", "cidr", "port")
INCOMPLETE = "incomplete observation forbids attaching"
_NETNS_RE = re.compile(r"[A-Za-z0-9_.@:+-]{1,64}")
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.@:+-]{1,15}")


@dataclass(frozen=True)
class ScopeEntry:
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


@dataclass(frozen=True)
class ScopedInterface:
    netns: str          # "host" or the ip netns name
    netns_inode: int
    ifname: str
    ifindex: int

    @property
    def label(self) -> str:
        return self.ifname if self.netns == "host" else f"{self.netns}/{self.ifname}"


def _bad(msg: str) -> ScopeError:
    return ScopeError(msg)


def _check_netns_name(name: str) -> str:
    if name == "host":
        return name
    if not _NETNS_RE.fullmatch(name) or name in (".", ".."):
        raise _bad(f"bad scope netns {ascii(name)[:70]}: not a network namespace name")
    return name


def _check_ifname(name: str) -> str:
    if not _IFNAME_RE.fullmatch(name) or name in (".", ".."):
        raise _bad(f"bad scope iface {ascii(name)[:70]}: not an interface name")
    return name


def parse_entry(text: str) -> ScopeEntry:
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    value = value.strip()
    if not sep or kind not in KINDS:
        raise _bad(f"bad scope {ascii(text)[:70]}: use netns=NAME, iface=[NETNS/]NAME, cidr=PREFIX or port=N")
    if not value:
        raise _bad(f"bad scope {ascii(text)[:70]}: empty value")
    if kind == "netns":
        return ScopeEntry(kind, _check_netns_name(value))
    if kind == "iface":
        ns, slash, ifn = value.rpartition("/")
        if slash:
            return ScopeEntry(kind, f"{_check_netns_name(ns)}/{_check_ifname(ifn)}")
        return ScopeEntry(kind, _check_ifname(value))
    if kind == "cidr":
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _bad(f"bad scope cidr {ascii(value)[:70]}: not an IPv4 or IPv6 prefix") from None
        return ScopeEntry(kind, str(net))
    try:
        port = int(value, 10)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise _bad(f"bad scope port {ascii(value)[:70]}: use 1-65535")
    return ScopeEntry(kind, str(port))


def parse_scope(args: Sequence[str] | None) -> list[ScopeEntry]:
    """Parse repeated --scope values; duplicates collapse, order is kept."""
    out: list[ScopeEntry] = []
    for a in args or ():
        for part in str(a).split(","):
            if part.strip():
                e = parse_entry(part)
                if e not in out:
                    out.append(e)
    return out


@dataclass
class ResolvedScope:
    entries: list[ScopeEntry]
    netns: dict[str, int]                       # every namespace the scope touches → inode
    interfaces: list[ScopedInterface]           # what must be covered for closure
    whole_netns: bool                           # interfaces = every link of the namespaces
    prefixes: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    closed: bool = True
    closed_reason: str = ""

    @property
    def filter(self) -> ScopeFilter:
        return ScopeFilter(
            netns_inodes=tuple(sorted(set(self.netns.values()))),
            prefixes=tuple(self.prefixes),
            ports=tuple(self.ports),
            ifindexes=() if self.whole_netns else tuple((i.netns_inode, i.ifindex) for i in self.interfaces),
        )

    def to_pb(self) -> session_pb2.Scope:
        return session_pb2.Scope(
            entries=[session_pb2.ScopeEntry(kind=e.kind, value=e.value) for e in self.entries],
            netns_inodes=sorted(set(self.netns.values())),
            interfaces=[i.label for i in self.interfaces],
            closed=self.closed,
            closed_reason=self.closed_reason,
        )

    def describe(self) -> str:
        return " ".join(str(e) for e in self.entries) or "netns=host"

    def netns_names(self) -> list[str]:
        return sorted(self.netns)

    def check_closed(self, when: str) -> None:
        """Re-list the interfaces; anything that vanished makes the scope open → refuse.

        Interfaces that appeared in a whole-namespace scope are added (they are covered
        from here on). Called right before and right after the attach."""
        current = _enumerate(self.netns, self.whole_netns, self.interfaces)
        now = {(i.netns, i.ifindex, i.ifname) for i in current}
        gone = [i for i in self.interfaces if (i.netns, i.ifindex, i.ifname) not in now]
        if gone:
            self.closed = False
            self.closed_reason = f"interface {gone[0].label} vanished during {when}"
            raise ScopeError(f"{INCOMPLETE}: {self.closed_reason}")
        if self.whole_netns:
            self.interfaces = current


def _enumerate(netns: dict[str, int], whole: bool, wanted: list[ScopedInterface]) -> list[ScopedInterface]:
    out: list[ScopedInterface] = []
    for name, inode in sorted(netns.items()):
        try:
            if nsmod.netns_inode(name) != inode:
                raise ScopeError(f"{INCOMPLETE}: network namespace {name} was replaced")
            links = nsmod.links(name)
        except ScopeError:
            raise
        except Exception:
            raise ScopeError(f"{INCOMPLETE}: network namespace {name} vanished") from None
        for idx, ifn in links:
            if whole or any(w.netns == name and w.ifname == ifn for w in wanted):
                out.append(ScopedInterface(name, inode, ifn, idx))
    return out


def _inode(name: str) -> int:
    try:
        return nsmod.netns_inode(name)
    except Exception:
        raise ScopeError(f"unknown network namespace {name!r} (see `ip netns list`)") from None


def resolve(entries: Sequence[ScopeEntry]) -> ResolvedScope:
    """Turn entries into inodes and ifindexes; unknown names raise ScopeError (exit 78)."""
    entries = list(entries)
    ns_names = [e.value for e in entries if e.kind == "netns"]
    iface_specs = []
    for e in entries:
        if e.kind == "iface":
            ns, slash, ifn = e.value.rpartition("/")
            iface_specs.append((ns if slash else "host", ifn))
    netns = {n: _inode(n) for n in dict.fromkeys(ns_names or ["host"])}
    whole = not iface_specs
    wanted: list[ScopedInterface] = []
    if iface_specs:
        if ns_names:
            outside = [f"{n}/{i}" for n, i in iface_specs if n not in netns]
            if outside:
                raise ScopeError(f"scope is empty: iface {outside[0]} is not in any scoped netns "
                                 f"(name the interface as iface=NETNS/IFACE)")
        netns = {n: netns.get(n) or _inode(n) for n, _ in iface_specs}
        for n, ifn in iface_specs:
            links = dict((name, idx) for idx, name in nsmod.links(n))
            if ifn not in links:
                where = "the host" if n == "host" else f"netns {n}"
                raise ScopeError(f"unknown interface {ifn!r} in {where}")
            wanted.append(ScopedInterface(n, netns[n], ifn, links[ifn]))
    rs = ResolvedScope(
        entries=entries,
        netns=netns,
        interfaces=_enumerate(netns, whole, wanted),
        whole_netns=whole,
        prefixes=[e.value for e in entries if e.kind == "cidr"],
        ports=sorted({int(e.value) for e in entries if e.kind == "port"}),
    )
    # A named interface that vanished between lookup and listing is already an open scope.
    missing = [w for w in wanted if w not in rs.interfaces]
    if missing:
        rs.closed, rs.closed_reason = False, f"interface {missing[0].label} vanished during resolution"
        raise ScopeError(f"{INCOMPLETE}: {rs.closed_reason}")
    return rs


class ScopeWatcher:
    """Polls the scoped namespaces (about once a second) and reports what changed.

    It opens no long-lived netlink socket in a scoped namespace: a socket would pin the
    namespace and keep it alive after `ip netns del`."""

    def __init__(self, scope: ResolvedScope):
        self.scope = scope
        self.known = {(i.netns, i.ifindex): i for i in scope.interfaces}
        self.gone_netns: set[str] = set()
        self.complete = True
        self.reasons: list[str] = []

    def poll(self) -> list[events_pb2.ScopeChange]:
        changes: list[events_pb2.ScopeChange] = []
        for name, inode in sorted(self.scope.netns.items()):
            if name in self.gone_netns:
                continue
            try:
                alive = nsmod.netns_inode(name) == inode
                links = nsmod.links(name) if alive else []
            except Exception:
                alive, links = False, []
            if not alive:
                self.gone_netns.add(name)
                changes.append(self._lost("netns-removed", name, "", 0, f"network namespace {name} is gone"))
                continue
            now = {(name, idx): ifn for idx, ifn in links}
            for key, itf in list(self.known.items()):
                if itf.netns == name and key not in now:
                    del self.known[key]
                    changes.append(self._lost("iface-removed", name, itf.ifname, itf.ifindex,
                                              f"interface {itf.label} disappeared"))
            if self.scope.whole_netns:
                for key, ifn in now.items():
                    if key not in self.known:
                        self.known[key] = ScopedInterface(name, inode, ifn, key[1])
                        changes.append(events_pb2.ScopeChange(
                            what="iface-added", netns=name, iface=ifn, ifindex=key[1],
                            observation_complete=self.complete,
                            detail="covered by the namespace filter"))
        return changes

    def _lost(self, what: str, netns: str, iface: str, ifindex: int, detail: str) -> events_pb2.ScopeChange:
        self.complete = False
        self.reasons.append(detail)
        return events_pb2.ScopeChange(what=what, netns=netns, iface=iface, ifindex=ifindex,
                                      observation_complete=False, detail=detail)
