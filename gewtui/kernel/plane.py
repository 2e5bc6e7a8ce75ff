"""The kernel plane's face toward sessions: one object owning every bcc program and map
of one session. Interface only here; the probes fill it in.

A session (gewtui.kernel.session) drives it through the transaction steps, in order:

    plane = KernelPlane(probes, config)      # create: nothing in the kernel yet
    plane.stage()        # compile bpf/*.c with bcc; maps created, no program loaded
    plane.verify()       # load every program (the verifier runs); nothing attached
    plane.set_scope(f)   # fill the in-kernel scope maps (netns inodes, prefixes, ports)
    plane.attach()       # attach every tracepoint; from here events flow
    plane.pin(path)      # pin maps under the session's bpffs directory (commit)
    ...
    plane.poll(ms)       # drain the ring buffer into on_event callbacks
    plane.close()        # detach and free everything; safe at any step, idempotent

Any step may raise; the session then calls close() and removes what it pinned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from gewtui.pb import events_pb2


@dataclass(frozen=True)
class ScopeFilter:
    """What the in-kernel scope maps hold. Kinds combine with AND, values with OR;
    an empty kind does not filter."""

    netns_inodes: tuple[int, ...] = ()
    prefixes: tuple[str, ...] = ()          # "10.0.0.0/8", "fd00::/64"
    ports: tuple[int, ...] = ()
    ifindexes: tuple[tuple[int, int], ...] = ()  # (netns inode, ifindex) of scoped interfaces


@dataclass
class PlaneStats:
    events: int = 0                 # L0 events handed to on_event
    lost: int = 0                   # records the kernel could not reserve (counted in-kernel)
    produced: int = 0               # records the kernel tried to emit
    bpf_run_time_ns: int = 0        # sum over this plane's programs (kernel program stats)
    bpf_run_count: int = 0
    per_cpu_lost: dict[int, int] = field(default_factory=dict)


class KernelPlaneLike(Protocol):
    programs: list[str]             # names of loaded programs (for the manifest)
    maps: list[str]                 # names of maps (for pinning and the manifest)

    def stage(self) -> None: ...
    def verify(self) -> None: ...
    def set_scope(self, scope: ScopeFilter) -> None: ...
    def attach(self) -> None: ...
    def pin(self, directory: str) -> list[str]: ...
    def poll(self, timeout_ms: int) -> int: ...
    def stats(self) -> PlaneStats: ...
    def close(self) -> None: ...


EventSink = Callable[[events_pb2.Event], None]
