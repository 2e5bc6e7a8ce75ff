"""What a kernel plane is to the session that drives it: its configuration, the scope its
in-kernel filter holds, the stats it reports, and the protocol a stand-in plane implements.

Place in the pipeline: gewtui.kernel.session drives any ``KernelPlaneLike`` through
stage, verify, attach and close (the real one is gewtui.kernel.plane's KernelPlane; tests
put planes of their own there); gewtui.kernel.scope resolves a session's scope into a
``ScopeFilter``. Pure data: importing this module loads no bcc.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gewtui.pb import session_pb2


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
    consumed: int = 0               # records taken from the ring buffer
    decode_errors: int = 0          # consumed records that could not be decoded
    map_full: int = 0               # in-scope state a full kernel map could not hold
    recursion_misses: int = 0       # program runs the kernel skipped (a BPF program was active)
    unknown_netns: int = 0          # events a netns scope rejected because their netns was unknowable
    rescued: int = 0                # records the ring buffer refused at first and kept anyway (not lost)
    raced: int = 0                  # lifecycle items lost or handed over twice (CPUs raced on one entry)
    per_probe_lost: dict[str, int] = field(default_factory=dict)
    observation_complete: bool = True
    incomplete_reason: str = ""

    def judge(self, unrun: int = 0) -> None:
        """Whether the observation is complete, and if not why: every loss and skipped
        probe run counted above (``unrun``: of the skipped runs, those the kernel did not
        count, seen by a tracepoint's own counter)."""
        reasons = []
        if self.lost:
            reasons.append(f"{self.lost} records lost (the ring buffer refused them)")
        if self.decode_errors:
            reasons.append(f"{self.decode_errors} records undecodable")
        if self.map_full:
            reasons.append(f"{self.map_full} in-scope entries did not fit a kernel map")
        if self.raced:
            reasons.append(f"{self.raced} lifecycle items lost or handed over twice while CPUs raced on "
                           "one socket's entry")
        if self.recursion_misses:
            silent = f" ({unrun} of them uncounted by it, seen by the tracepoint's own counter)" if unrun else ""
            reasons.append(f"{self.recursion_misses} probe runs skipped by the kernel{silent}")
        self.observation_complete = not reasons
        self.incomplete_reason = "; ".join(reasons)

    def to_pb(self, ktime_ns: int = 0) -> session_pb2.SessionStats:
        return session_pb2.SessionStats(
            ktime_ns=ktime_ns, events=self.events, lost_records=self.lost + self.decode_errors,
            observation_complete=self.observation_complete, incomplete_reason=self.incomplete_reason,
            bpf_run_time_ns=self.bpf_run_time_ns, bpf_run_count=self.bpf_run_count, produced=self.produced)


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


@dataclass
class PlaneConfig:
    ringbuf_pages: int = 1024       # power of two; 4 MiB absorbs bursts the decoder cannot follow at once
    wake_every: int = 32            # wake the consumer every N records per CPU and probe
    # longest wait inside poll() before draining records that did not wake the consumer;
    # each wakeup preempts the workload on a busy box (docs/probes.md, "Transport")
    poll_slice_ms: int = 100
    # records a second under which no record forces a wakeup (transport.WakePolicy); 0: never
    quiet_below: int = 2000
    summary_interval_ms: int = 1000 # tcp_probe / qdisc summaries and loss checks
    max_socks: int = 16384
    max_out_socks: int = 65536
    max_qdiscs: int = 1024
    max_fib_keys: int = 8192
    fib_cadence_ms: int = 1000      # an unchanged route result is re-reported at most this often
    allow_risky: bool = False
    strict: bool = False            # refuse (instead of skip) requested probes that cannot run
    # Kernel timing of every program run (BPF_ENABLE_STATS): ~100 ns per run on top of the
    # program itself, so only on request (--bpf-stats); recursion misses are counted either way.
    bpf_stats: bool = False
    typed_programs: bool = True     # BTF-typed variants of per-packet programs where the kernel takes them
    # hold the drop program's runs against its tracepoint's hit counter
    # (gewtui/kernel/witness.py); False only to measure what that costs
    witness: bool = True
    # Lifecycle records (bpf/tcp_state.c): a socket's transitions held in the kernel and
    # handed over as one record at its close. False: one record per transition (the
    # per-event path; the same events, more records).
    lifecycle: bool = True
    max_life: int = 0               # lifecycle entries; 0: as many as max_socks
    # items held longer than this are asked for at the next summary tick, so a long
    # connection shows live (its establishment within about this plus the tick)
    life_hold_ms: int = 250
