"""The kernel side of a drop: the deny classifier plus its tc filters, through the session.

Place in the pipeline: the intervention controller's ``DropBackend`` for a live session.
The classifier (bpf/deny.c) is compiled and loaded on the first drop only, so a session that
never drops never loads it. Filters are attached with the session's ``add_tc_filter``, which
writes the manifest before it touches the kernel: a SIGKILLed session's filters (and a clsact
qdisc it created) are found and removed by orphan cleanup, and nothing else is.

tc placement: one cls_bpf direct-action filter per interface and direction, shared by every
drop on that interface (the deny map is what differs). Its priority is the lowest free one
in 1..8, so the deny runs before filters that might end classification with TC_ACT_OK; a
priority holding another kind of filter is skipped, and a (prio, handle) pair already in use
is never taken. Handles carry this process's pid, so two instances never pick the same one.
Only Ethernet-framed devices (Ethernet, veth, loopback) are accepted: the classifier parses
from an Ethernet header.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from gewtui.errors import GewError
from gewtui.intervene.classifier import DenyClassifier, DenyCounters, DenyTuple
from gewtui.intervene.targets import Attachment

DENY_PRIOS = tuple(range(1, 9))
_ARPHRD_OK = {1: "ether", 772: "loopback"}


class AttachRefused(GewError):
    """The classifier cannot be placed on this interface."""


def link_type(ifname: str, netns: str) -> int:
    """ARPHRD type of the device (1 = Ethernet, 772 = loopback)."""
    from pyroute2 import IPRoute

    from gewtui.kernel.netns import call_in_netns

    def lookup() -> int:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                raise AttachRefused(f"no interface {netns or 'host'}/{ifname}")
            return int(ipr.get_links(idx[0])[0]["ifi_type"])

    # a thread that entered the namespace, not IPRoute(netns=…): that one forks the whole
    # process, which hangs a process holding bcc or gRPC threads
    ns = "" if netns in ("", "host") else netns
    return call_in_netns(ns, lookup) if ns else lookup()


class KernelDropBackend:
    def __init__(self, session: Any, *,
                 classifier_factory: Callable[[], DenyClassifier] = DenyClassifier):
        self._session = session
        self._factory = classifier_factory
        self._clf: DenyClassifier | None = None
        self._recs: dict[Attachment, list[Any]] = {}
        self._seq = 0

    @property
    def loaded(self) -> bool:
        return self._clf is not None

    def prepare(self) -> bool:
        """Load the classifier if it is not loaded (nothing is attached). True if it was."""
        was = self._clf is not None
        self.classifier()
        return was

    def classifier(self) -> DenyClassifier:
        if self._clf is None:
            self._clf = self._factory()
        return self._clf

    # -- deny map --------------------------------------------------------------------
    def deny(self, tuples: list[DenyTuple], expires_ns: int) -> list[DenyTuple]:
        clf = self.classifier()
        added: list[DenyTuple] = []
        try:
            for t in tuples:
                if clf.add(t, expires_ns):
                    added.append(t)
        except Exception:
            self.allow(added)
            raise
        return added

    def allow(self, tuples: Iterable[DenyTuple]) -> dict[DenyTuple, DenyCounters]:
        if self._clf is None:
            return {}
        out = {}
        for t in tuples:
            c = self._clf.remove(t)
            if c is not None:
                out[t] = c
        return out

    def counters(self, tuples: Iterable[DenyTuple]) -> DenyCounters:
        if self._clf is None:
            return DenyCounters()
        packets = nbytes = last = 0
        for t in tuples:
            c = self._clf.counters(t)
            if c is not None:
                packets, nbytes, last = packets + c.packets, nbytes + c.bytes, max(last, c.last_ns)
        return DenyCounters(packets, nbytes, last)

    # -- tc ------------------------------------------------------------------------------
    def _handle(self) -> int:
        self._seq += 1
        return (0x67 << 24) | ((os.getpid() & 0xFFFF) << 8) | (self._seq & 0xFF)

    def _add(self, where: Attachment, direction: str) -> Any:
        from gewtui.kernel import tc

        ns = "" if where.netns in ("", "host") else where.netns
        existing = tc.list_filters(where.ifname, ns, direction)
        for prio in DENY_PRIOS:
            if any(f.prio == prio and f.kind != "bpf" for f in existing):
                continue
            handle = self._handle()
            if any(f.prio == prio and f.handle == handle for f in existing):
                continue
            clf = self.classifier()
            return self._session.add_tc_filter(where.ifname, where.netns, direction, clf.fd,
                                               prio, handle, clf.name)
        raise AttachRefused(f"no free tc priority in 1-{DENY_PRIOS[-1]} on {where.label} {direction}")

    def attach(self, where: Attachment) -> None:
        if where in self._recs:
            return
        kind = link_type(where.ifname, where.netns)
        if kind not in _ARPHRD_OK:
            raise AttachRefused(f"{where.label} is not an Ethernet-framed device (type {kind}); "
                                "the deny classifier parses Ethernet headers")
        recs: list[Any] = []
        try:
            for direction in ("ingress", "egress"):
                recs.append(self._add(where, direction))
        except BaseException:
            self._remove(recs)
            raise
        self._recs[where] = recs

    def _remove(self, recs: list[Any]) -> None:
        # Reverse order: the clsact we created is recorded on the first filter, and is only
        # removed once it is empty, i.e. after the filters added later are gone.
        errors = []
        for rec in reversed(recs):
            try:
                self._session.remove_tc_filter(rec)
            except Exception as e:
                errors.append(str(e))
        if errors:
            raise GewError(f"tc filter removal: {'; '.join(errors)}")

    def detach(self, where: Attachment) -> None:
        self._remove(self._recs.pop(where, []))

    def close(self) -> None:
        try:
            for where in list(self._recs):
                try:
                    self.detach(where)
                except GewError:
                    pass   # the session's own teardown removes what its manifest still names
        finally:
            if self._clf is not None:
                self._clf.close()
                self._clf = None
