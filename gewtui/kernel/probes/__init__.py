"""The probe units, in attach-priority order (SPEC §3: protocol state, then routing and
queues, then socket lineage). Each unit is bpf/<name>.c plus the module of the same name.
Importing this package never imports bcc.
"""
from __future__ import annotations

from gewtui.kernel.probes import drops, irqctx, owner, queue, route, tcp_events, tcp_probe, tcp_state
from gewtui.kernel.probes.base import ProbeUnit

UNITS: tuple[ProbeUnit, ...] = (
    irqctx.UNIT,
    tcp_state.UNIT,
    tcp_events.UNIT,
    tcp_probe.UNIT,
    route.UNIT,
    queue.UNIT,
    drops.UNIT,
    owner.UNIT,
)
BY_NAME = {u.name: u for u in UNITS}
DEFAULT = tuple(u.name for u in UNITS)


def resolve(names) -> list[ProbeUnit]:
    """Units for ``names`` plus the units they depend on, in UNITS order."""
    want: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in BY_NAME:
            from gewtui.errors import UsageError

            raise UsageError(f"unknown probe {n!r} (known: {', '.join(BY_NAME)})")
        if n not in want:
            want.add(n)
            todo.extend(BY_NAME[n].depends)
    return [u for u in UNITS if u.name in want]
