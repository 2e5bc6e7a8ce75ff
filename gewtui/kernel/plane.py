"""The kernel plane's face toward sessions: one object owning every bcc program and map
of one session, the ring buffer, the decoder and the loss accounting.

A session (gewtui.kernel.session) drives it through the transaction steps, in order:

    plane = KernelPlane(probes, config, on_event=sink)   # create: nothing in the kernel yet
    plane.stage()        # capabilities checked, bpf/*.c compiled with bcc; maps created
    plane.verify()       # load every program (the verifier runs); nothing attached
    plane.set_scope(f)   # fill the in-kernel scope maps (netns inodes, prefixes, ports, ifaces)
    plane.attach()       # attach every tracepoint; from here events flow
    plane.pin(path)      # pin maps under the session's bpffs directory (commit)
    ...
    plane.poll(ms)       # drain the ring buffer into on_event; runs the summary timer
    plane.stats()        # PlaneStats: events, produced / consumed / lost, BPF run time
    plane.stop()         # detach, drain, final summaries and loss notices (still via on_event)
    plane.close()        # stop() if needed, then free everything; safe at any step, idempotent

``probes`` names probe units (gewtui.kernel.probes.DEFAULT when None); their dependencies
are added. A unit the kernel cannot run is skipped with its reason in ``plane.skipped``
(``config.strict`` makes that an error instead); the session is expected to have called
runtime.capabilities.verify_compatibility on ``plane.needed_capabilities()``.
Everything runs on the caller's thread: ``on_event`` is called from ``poll()`` and
``close()`` only. Events are L0 protobuf events with ids from 1 in decode order.
Any step may raise a GewError; the session then calls close() and removes what it pinned.

Loss accounting: every record a program tries to emit is counted in the kernel
(``produced``), every reservation that failed too (``lost``, per probe and CPU); after
close(), ``produced == consumed + lost`` exactly. Losses, map-full conditions, decode
failures and programs the kernel skipped (recursion) become LostRecords events and make
``stats().observation_complete`` false.
"""
from __future__ import annotations

import ipaddress
import math
import time
from typing import Callable

from gewtui.errors import CapabilityError, GewError, ScopeError, SessionError
from gewtui.kernel import build
from gewtui.kernel.decode import Decoder, Vocab, monotonic_ns
from gewtui.kernel.plane_contract import PlaneConfig, PlaneStats, ScopeFilter
from gewtui.kernel.probes import DEFAULT, resolve, typed
from gewtui.kernel.probes.base import Program, ProbeUnit
from gewtui.kernel.transport import WakePolicy
from gewtui.kernel.witness import Witnesses
from gewtui.pb import events_pb2, session_pb2
from gewtui.runtime import mounts, privileges
from gewtui.runtime.btf import BTFError, load_vmlinux
from gewtui.runtime.tracefs import Tracefs

EventSink = Callable[[events_pb2.Event], None]

def rescue_pages(ringbuf_pages: int) -> int:
    """Pages of the second ring buffer (gew_rb_rescue): a 64th of the main one, from one page
    to 256 (1 MiB); a power of two when the main one is."""
    return max(1, min(256, ringbuf_pages // 64))


# Maps of gew_common.h, in every session's object.
COMMON_MAPS = ("gew_rb", "gew_rb_rescue", "gew_counters", "gew_irqctx", "gew_witness", "gew_wake_quiet", "gew_scope_cfg",
               "gew_scope_netns", "gew_scope_prefix", "gew_scope_ports", "gew_scope_ifaces", "gew_socks",
               "gew_out_socks", "gew_sock_gen")


class KernelPlane:
    """See the module docstring."""

    def __init__(self, probes=None, config: PlaneConfig | None = None, on_event: EventSink | None = None,
                 *, report: session_pb2.CapabilityReport | None = None, tracefs: Tracefs | None = None):
        # report: a capability report to use instead of building one (tests, sessions that
        # already negotiated); tracefs: where formats are read (default: the live tracefs)
        self.config = config or PlaneConfig()
        if self.config.ringbuf_pages <= 0 or self.config.ringbuf_pages & (self.config.ringbuf_pages - 1):
            raise GewError(f"ring buffer pages must be a power of two, not {self.config.ringbuf_pages}")
        self.requested = tuple(probes) if probes else DEFAULT
        self._units: list[ProbeUnit] = resolve(self.requested)
        self.on_event = on_event
        self.capability_report = report
        self.tracefs = tracefs
        self.skipped: dict[str, str] = {}
        self.programs: list[str] = []
        self.maps: list[str] = []
        self.state = "created"
        self.scope = ScopeFilter()
        self.bpf = None
        self.decoder: Decoder | None = None
        self._transport = None
        self._stats_enabler = None
        self._attached: list = []
        self._next_tick = 0
        self._wake = WakePolicy(self.config.poll_slice_ms, self.config.quiet_below)
        self._seen_loss: dict = {}
        self._prog_fds: dict[str, int] = {}
        # unit name -> the programs loaded and attached for it on this kernel (stage)
        self._unit_programs: dict[str, tuple[Program, ...]] = {}
        self._typed = typed.TypedPrograms()      # programs loaded as their BTF-typed variant
        self._btf = None
        self._closed_stats: PlaneStats | None = None
        self._unit_data: dict[str, dict] = {}   # per unit, what its hooks keep (unit_data)
        self.attached_ktime_ns = 0
        # runs the kernel skipped without counting them (gewtui/kernel/witness.py)
        self._witnesses = Witnesses(self._witness_runs, self._recursion_misses)

    @classmethod
    def for_session(cls, ctx) -> "KernelPlane":
        """The plane a session (gewtui.kernel.session.PlaneContext) gets: every probe unit,
        its event sink, its ring-buffer size. The session sets the scope after verify."""
        cfg = PlaneConfig()
        if getattr(ctx, "ringbuf_pages", None):
            cfg.ringbuf_pages = int(ctx.ringbuf_pages)
        cfg.bpf_stats = bool(getattr(ctx, "bpf_stats", False))
        return cls(None, cfg, on_event=ctx.on_event)

    @property
    def units(self) -> list[str]:
        """Names of the probe units this plane runs (after stage: those that can run)."""
        return [u.name for u in self._units]

    @property
    def typed(self) -> list[str]:
        """Programs running as their BTF-typed variant (the others, if refused, in
        ``typed_refused``)."""
        return list(self._typed.fds)

    @property
    def typed_refused(self) -> dict[str, str]:
        """Program name -> why the kernel refused its typed variant (it runs raw)."""
        return dict(self._typed.refused)

    @property
    def drop_reasons(self) -> dict[int, str]:
        return dict(self.decoder.vocab.drop_reasons) if self.decoder else {}

    @property
    def reset_reasons(self) -> dict[int, str]:
        return dict(self.decoder.vocab.reset_reasons) if self.decoder else {}

    # -- create/stage ------------------------------------------------------------------------
    def needed_capabilities(self) -> list[str]:
        names: list[str] = []
        for u in self._units:
            names.extend(n for n in u.capability_names() if n not in names)
        return names

    def stage(self) -> None:
        """Check capabilities, choose the units that can run, compile them with bcc."""
        self._expect("created", "stage")
        privileges.require_root("attaching probes")
        mounts.ensure_mounted()
        tf = self.tracefs or Tracefs()
        if self.capability_report is None:
            self.capability_report = build.capability_report(self._units, tracefs=tf)
        ok, self.skipped = build.runnable(self._units, self.capability_report, self.config.allow_risky)
        if self.config.strict and self.skipped:
            name, why = next(iter(self.skipped.items()))
            raise CapabilityError(f"probe {name} cannot run: {why}")
        if not [u for u in ok if u.decoders]:   # a unit that makes records (not only the context tracker)
            why = "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "none requested"
            raise CapabilityError(f"no probe can run ({why})")
        self._units = ok
        try:
            btf = load_vmlinux()
            cflags = build.offset_flags(ok, btf) + build.tunable_flags(
                GEW_RB_PAGES=self.config.ringbuf_pages, GEW_RESCUE_PAGES=rescue_pages(self.config.ringbuf_pages),
                GEW_WAKE_EVERY=max(1, self.config.wake_every),
                GEW_MAX_SOCKS=self.config.max_socks, GEW_MAX_OUT_SOCKS=self.config.max_out_socks,
                GEW_MAX_QDISCS=self.config.max_qdiscs, GEW_MAX_FIB_KEYS=self.config.max_fib_keys,
                GEW_FIB_CADENCE_NS=self.config.fib_cadence_ms * 1_000_000,
                **{k: v for u in ok if u.cflags for k, v in u.cflags(self.config).items()})
        except BTFError as e:
            raise CapabilityError(f"struct offsets unavailable: {e}") from None
        # the context tracker's programs only where gew_ctx() cannot read the preempt count
        self._unit_programs = {u.name: (u.programs_for(btf) if u.programs_for else u.programs) for u in ok}
        self._btf = btf
        text = build.source(ok)
        try:
            # build.load_bpf: bcc itself would keep the maps of a load the kernel refused
            self.bpf = build.load_bpf(text=text.encode(), cflags=cflags)
        except Exception as e:
            raise SessionError(f"compiling the probes failed: {str(e).splitlines()[0]} "
                               "(compiler output above)") from None
        self.maps = list(COMMON_MAPS) + [m for u in ok if u.maps for m in u.maps(self.config)]
        vocab = Vocab.from_kernel(tf, btf)
        self.decoder = Decoder(ok, vocab, self._emit)
        self.state = "staged"

    def verify(self) -> None:
        """Load every program: the verifier runs now, before anything is attached."""
        self._expect("staged", "verify")
        from bcc import BPF

        for u in self._units:
            for p in self._programs(u):
                if p.typed_fn and self.config.typed_programs:
                    fd = self._typed.load(self.bpf.dump_func(p.typed_fn.encode()), p.fn, p.name, self._btf)
                    if fd is not None:      # else the raw program runs instead
                        self._prog_fds[p.fn] = fd
                        self.programs.append(p.fn)
                        continue
                try:
                    fn = build.load_retrying(self.bpf.load_func, p.fn.encode(),
                                       BPF.RAW_TRACEPOINT if p.raw else BPF.TRACEPOINT)
                except Exception as e:
                    if build.EAGAIN in str(e):
                        raise SessionError(f"the kernel could not load {p.fn} ({u.name}): interrupted "
                                           f"{build.LOAD_TRIES} times in a row (EAGAIN: a tracer or profiler "
                                           f"stopping this process?)") from None
                    raise SessionError(f"the verifier refused {p.fn} ({u.name}): "
                                       f"{str(e).splitlines()[0]}") from None
                self._prog_fds[p.fn] = fn.fd
                self.programs.append(p.fn)
        for u in self._units:
            if u.start is not None:
                u.start(self)
        self.state = "verified"

    # -- scope -----------------------------------------------------------------------------
    def set_scope(self, scope: ScopeFilter) -> None:
        """Fill the scope maps. After attach, a new scope also resets what the kernel
        concluded about sockets and qdiscs (summaries are flushed first)."""
        if self.state not in ("staged", "verified", "attached"):
            raise SessionError(f"set_scope in state {self.state}")
        b = self._tables
        nets = [int(n) for n in scope.netns_inodes]
        nets_v = [(n,) for n in nets]
        prefixes = []
        for p in scope.prefixes:
            try:
                prefixes.append(ipaddress.ip_network(p, strict=False))
            except ValueError as e:
                raise ScopeError(f"bad prefix {p!r}: {e}") from None
        for port in scope.ports:
            if not 0 < int(port) < 65536:
                raise ScopeError(f"bad port {port}")
        if self.state == "attached":
            self._tick(force=True)
        for name in ("gew_scope_netns", "gew_scope_prefix", "gew_scope_ports", "gew_scope_ifaces"):
            b[name].clear()
        one = b["gew_scope_netns"].Leaf(1)
        for (n,) in nets_v:
            b["gew_scope_netns"][b["gew_scope_netns"].Key(n)] = one
        t = b["gew_scope_prefix"]
        for net in prefixes:
            k = t.Key()
            k.prefixlen = 8 + net.prefixlen
            k.family = 2 if net.version == 4 else 10
            raw = net.network_address.packed
            for i, byte in enumerate(raw):
                k.addr[i] = byte
            t[k] = t.Leaf(1)
        t = b["gew_scope_ports"]
        for port in scope.ports:
            t[t.Key(int(port))] = t.Leaf(1)
        t = b["gew_scope_ifaces"]
        for netns, ifindex in scope.ifindexes:
            k = t.Key()
            k.netns, k.ifindex = int(netns), int(ifindex)
            t[k] = t.Leaf(1)
        cfg = b["gew_scope_cfg"]
        v = cfg.Leaf()
        v.netns_on, v.prefix_on = int(bool(nets)), int(bool(prefixes))
        v.port_on, v.iface_on = int(bool(scope.ports)), int(bool(scope.ifindexes))
        cfg[cfg.Key(0)] = v
        if self.state == "attached":
            for u in self._units:
                if u.rescope is not None:
                    u.rescope(self)
            for name in ("gew_socks", "gew_out_socks"):
                b[name].clear()
            # what the owner unit remembers per CPU held under the old tables
            gen = b["gew_sock_gen"]
            gen[gen.Key(0)] = gen.Leaf(gen[gen.Key(0)].value + 1)
        self.scope = scope

    # -- attach/pin ------------------------------------------------------------------------
    def attach(self) -> None:
        """Attach every program (the context tracker first, where this kernel needs one, so
        attribution is right from the first record) and open the ring buffer."""
        self._expect("verified", "attach")
        from gewtui.kernel.transport import RingTransport, StatsEnabler

        if self.config.bpf_stats:
            self._stats_enabler = StatsEnabler()
            self._stats_enabler.enable()
        self._transport = RingTransport(self.bpf, self.decoder)
        for u in self._units:
            for p in self._programs(u):
                try:
                    if self._typed.attach(p.fn):
                        pass    # a typed program: attached by its own link
                    elif p.raw:
                        self.bpf.attach_raw_tracepoint(tp=p.name.encode(), fn_name=p.fn.encode())
                    else:
                        self.bpf.attach_tracepoint(tp=f"{p.group}:{p.name}".encode(), fn_name=p.fn.encode())
                except Exception as e:
                    raise SessionError(f"attaching {p.attach_point} failed: {str(e).splitlines()[0]}") from None
                self._attached.append(p)
        if self.config.witness:   # the counters after the programs: runs may lead hits, never trail
            self._witnesses.open((u.name, p) for u in self._units for p in self._programs(u)
                                 if p.witness >= 0 and p in self._attached)
        self.attached_ktime_ns = monotonic_ns()
        self._next_tick = self.attached_ktime_ns + self.config.summary_interval_ms * 1_000_000
        self._tick_start = self.attached_ktime_ns
        self.state = "attached"

    @property
    def witness_refused(self) -> dict[str, str]:
        return self._witnesses.refused

    def _witness_runs(self, slot: int) -> dict[int, int]:
        t = self._tables["gew_witness"]
        # every possible CPU: one gone offline keeps the runs its counter still holds hits for
        return dict(enumerate(int(v) for v in t[t.Key(slot)]))

    def _recursion_misses(self, fn: str) -> int:
        from gewtui.kernel.transport import prog_stats

        fd = self._prog_fds.get(fn)
        return prog_stats(fd).recursion_misses if fd is not None else 0

    def pin(self, directory: str) -> list[str]:
        """Pin every map under ``directory`` (which the session created); returns the paths."""
        if self.state not in ("verified", "attached"):
            raise SessionError(f"pin in state {self.state}")
        from bcc import libbcc

        out = []
        for name in self.maps:
            path = f"{directory.rstrip('/')}/{name}"
            rc = libbcc.lib.bpf_obj_pin(self._tables[name].map_fd, path.encode())
            if rc != 0:
                raise SessionError(f"pinning map {name} at {path} failed (errno {-rc if rc < 0 else rc})")
            out.append(path)
        return out

    # -- running ---------------------------------------------------------------------------
    def poll(self, timeout_ms: int) -> int:
        """Drain records for up to ``timeout_ms`` (returning early once something was
        consumed; while quiet, a waiting poll lasts a slice) and run the summary timer.
        Returns the number of events emitted."""
        if self.state != "attached":
            return 0
        before = self.decoder.events
        wake = self._wake
        # No record wakes a quiet consumer: it takes them a slice at a time, since more polls
        # only add wakeups, each preempting the workload (docs/probes.md, "Transport").
        hold = wake.quiet and timeout_ms > 0
        timeout_ms = max(timeout_ms, self.config.poll_slice_ms) if hold else timeout_ms
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        while True:
            remaining = deadline - time.monotonic()
            # rounded up: a wait cut to 0 ms would spin through the poll's last millisecond
            slice_ms = max(0, min(math.ceil(remaining * 1000), self.config.poll_slice_ms))
            n = self._transport.poll(slice_ms, hold)
            now = monotonic_ns()
            quiet = wake.observe(self.decoder.consumed, n, now)
            if quiet is not None:
                self._set_quiet(quiet)
            if now >= self._next_tick:
                self._tick()
            if self.decoder.events > before or time.monotonic() >= deadline:
                return self.decoder.events - before

    def _emit(self, ev: events_pb2.Event) -> None:
        if self.on_event is not None:
            self.on_event(ev)

    def _tick(self, force: bool = False) -> None:
        """Periodic work: each unit's (summaries read from kernel tables, in UNITS order),
        then loss accounting."""
        now = monotonic_ns()
        for u in self._units:
            if u.tick is not None:
                u.tick(self, now)
        self._account_losses(now)
        self._tick_start = now
        self._next_tick = now + self.config.summary_interval_ms * 1_000_000

    def _set_quiet(self, quiet: bool) -> None:
        """Tell the programs whether records force wakeups (gew_wake_quiet, bpf/gew_common.h)."""
        try:
            t = self._tables["gew_wake_quiet"]
            t[t.Key(0)] = t.Leaf(int(quiet))
        except Exception:   # no such map (a test's object) or a failed write: wakeups stay as they were
            return
        self._wake.quiet = quiet

    # -- what units' hooks use (gewtui.kernel.probes.base.ProbeUnit) --------------------------
    def items(self, name: str):
        """(key bytes, value bytes) of every entry of map ``name``, read in one batch."""
        from gewtui.kernel.transport import hash_items

        return hash_items(self.bpf, name)

    def table(self, name: str):
        """bcc's table object of map ``name``."""
        return self._tables[name]

    def drain(self) -> None:
        """Decode everything the ring buffer holds now (after a helper made records)."""
        if self._transport is not None:
            self._transport.drain()

    def unit_data(self, unit: str) -> dict:
        """A unit's own state on this plane (helper program descriptors, ...)."""
        return self._unit_data.setdefault(unit, {})

    def load_helper(self, fn: str, unit: str) -> int:
        """Load program ``fn`` of the session's object as a raw tracepoint program that is
        never attached, only run on request (probes.typed.run_raw); returns its descriptor."""
        from bcc import BPF

        try:
            fd = self.bpf.load_func(fn.encode(), BPF.RAW_TRACEPOINT).fd
        except Exception as e:
            raise SessionError(f"the verifier refused {fn} ({unit}): {str(e).splitlines()[0]}") from None
        self.programs.append(fn)
        return fd

    def _lost_event(self, now: int, count: int, stage: str, probe: str, cpu: int = 0) -> None:
        ev = self.decoder.synthetic(now)
        ev.cpu = cpu
        ev.lost.count = count
        ev.lost.cpu = cpu
        ev.lost.stage = stage
        ev.lost.probe = probe
        ev.lost.window_start_ns = self._tick_start
        ev.lost.window_end_ns = now
        self.decoder.emit(ev)

    def _account_losses(self, now: int) -> None:
        """Turn counter increases since the last check into LostRecords events."""
        from gewtui.kernel.transport import prog_stats, read_counters

        c = read_counters(self.bpf)
        names = self.decoder.unit_names
        seen = self._seen_loss
        for (probe, cpu), n in sorted(c.lost.items()):
            d = n - seen.get(("lost", probe, cpu), 0)
            if d > 0:
                self._lost_event(now, d, "ringbuf-reserve", names.get(probe, str(probe)), cpu)
            seen[("lost", probe, cpu)] = n
        for stage, counts in (("map-full", c.map_full), ("raced", c.raced)):
            for probe, n in sorted(counts.items()):
                d = n - seen.get((stage, probe), 0)
                if d > 0:
                    self._lost_event(now, d, stage, names.get(probe, str(probe)))
                seen[(stage, probe)] = n
        d = self.decoder.decode_errors - seen.get("decode", 0)
        if d > 0:
            self._lost_event(now, d, "decode", "")
        seen["decode"] = self.decoder.decode_errors
        for u in self._units:
            # irqctx too: its raw programs cannot be skipped by another unit's, so a miss
            # there would leave the context flag wrong for records that were produced
            for p in self._programs(u):
                fd = self._prog_fds.get(p.fn)
                if fd is None:
                    continue
                m = prog_stats(fd).recursion_misses
                d = m - seen.get(("rec", p.fn), 0)
                if d > 0:
                    self._lost_event(now, d, "recursion", u.name)
                seen[("rec", p.fn)] = m
        for unit, n in self._witnesses.check():     # stage "unrun": skipped, uncounted
            self._lost_event(now, n, "unrun", unit)
        self._counters = c

    def program_stats(self) -> dict:
        """{program name: transport.ProgStats} from the kernel's statistics of each loaded
        program (run time, runs, recursion misses); only while the programs are loaded."""
        from gewtui.kernel.transport import prog_stats

        if self.bpf is None:
            return {}
        return {fn: prog_stats(fd) for fn, fd in self._prog_fds.items()}

    def stats(self) -> PlaneStats:
        if self._closed_stats is not None:
            return self._closed_stats
        return self._compute_stats()

    def _compute_stats(self) -> PlaneStats:
        from gewtui.kernel.transport import prog_stats, read_counters

        s = PlaneStats()
        if self.decoder is not None:
            s.events = self.decoder.events
            s.consumed = self.decoder.consumed
            s.decode_errors = self.decoder.decode_errors
        if self.bpf is None or self.state not in ("verified", "attached", "stopped"):
            return s
        c = read_counters(self.bpf)
        names = self.decoder.unit_names if self.decoder else {}
        s.produced = c.total_produced
        s.lost = c.total_lost
        for (probe, cpu), n in c.lost.items():
            s.per_cpu_lost[cpu] = s.per_cpu_lost.get(cpu, 0) + n
            name = names.get(probe, str(probe))
            s.per_probe_lost[name] = s.per_probe_lost.get(name, 0) + n
        s.map_full = sum(c.map_full.values())
        s.unknown_netns = sum(c.no_netns.values())
        s.rescued = sum(c.rescued.values())
        s.raced = sum(c.raced.values())
        for u in self._units:
            for p in self._programs(u):
                fd = self._prog_fds.get(p.fn)
                if fd is None:
                    continue
                ps = prog_stats(fd)
                s.bpf_run_time_ns += ps.run_time_ns
                s.bpf_run_count += ps.run_cnt
                s.recursion_misses += ps.recursion_misses
        s.recursion_misses += self._witnesses.unrun
        s.judge(unrun=self._witnesses.unrun)
        return s

    # -- stop/close ------------------------------------------------------------------------
    def stop(self) -> None:
        """Detach every program, drain what the kernel already produced and emit the final
        summaries and loss notices (through on_event), keeping the maps so stats() still
        reads the kernel counters. A session that records should call this before closing
        its recording; close() calls it when it was not. Idempotent."""
        if self.bpf is None or self.state != "attached":
            return
        self._witnesses.stop()               # before the detach: no hit without its chance of a run
        self._detach_all()
        # a program already running on another CPU may still submit: let it finish
        time.sleep(0.05)
        self.state = "stopped"
        self._final_drain()

    def close(self) -> None:
        """stop(), then free every program and map. Idempotent; safe in any state."""
        if self.state == "closed":
            return
        try:
            self.stop()
            if self.bpf is not None and self.state in ("verified", "stopped"):
                self._closed_stats = self._compute_stats()
        finally:
            if self._stats_enabler is not None:
                self._stats_enabler.disable()
                self._stats_enabler = None
            self._typed.close()
            self._witnesses.close()
            if self.bpf is not None:
                try:
                    self.bpf.cleanup()
                except Exception:
                    pass
            self.bpf = None
            if self._transport is not None:
                self._transport.close()   # unmaps the ring buffer
            self._transport = None
            self.state = "closed"

    def _detach_all(self) -> None:
        for p in reversed(self._attached):
            try:
                if self._typed.detach(p.fn):
                    continue
                if p.raw:
                    self.bpf.detach_raw_tracepoint(p.name.encode())
                else:
                    self.bpf.detach_tracepoint(f"{p.group}:{p.name}".encode())
            except Exception:
                pass   # cleanup() below closes whatever is left
        self._attached.clear()

    def _final_drain(self) -> None:
        self._transport.drain()
        self._tick(force=True)
        now = monotonic_ns()
        for u in self._units:
            if u.final is not None:
                u.final(self, now)

    @property
    def _tables(self):
        return _Tables(self.bpf)

    def _programs(self, u: ProbeUnit) -> tuple[Program, ...]:
        return self._unit_programs.get(u.name, u.programs)

    def _expect(self, state: str, step: str) -> None:
        if self.state != state:
            raise SessionError(f"kernel plane: {step} in state {self.state} (expected {state})")


class _Tables:
    """bcc wants map names as bytes; this lets the plane say them as str."""

    def __init__(self, bpf):
        self._bpf = bpf

    def __getitem__(self, name: str):
        return self._bpf[name.encode()]
