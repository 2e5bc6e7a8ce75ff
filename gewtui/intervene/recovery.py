"""After a SIGKILL: which drops were still in force, and the records that say how they ended.

Place in the pipeline: orphan cleanup (gewtui.kernel.bpffs, run by `gew session gc` and by
the next session's start) removes a dead session's tc filters from its manifest — that ends
its drops in the kernel (the deny program and map go with the last filter; the classifier had
also stopped dropping at each entry's expiry). Cleanup then appends to the dead session's
recording; ``removed_after_kill`` supplies the intervention records for it (the CLI hands it
to the kernel's cleanup as its ``end_drops``: the kernel plane knows no interventions): one
REMOVED_AFTER_KILL record per drop that the recording shows active with no end, saying when
(the cleanup's time) and why (the owner died; cleaned by whom). Pure: reads a recording, no
kernel.
"""
from __future__ import annotations

import os
from typing import Iterable

from gewtui.intervene import log as ilog
from gewtui.pb import intervention_pb2, recording_pb2

ipb = intervention_pb2
_IN_FORCE = (ipb.ACTIVE, ipb.EFFECTIVE, ipb.NO_EFFECT_SEEN)


def drops_in_force(records: Iterable[recording_pb2.Record]) -> list[intervention_pb2.InterventionRecord]:
    """Drops a sequence of records shows in force at its end: the latest version of each
    DROP record still ACTIVE/EFFECTIVE/NO_EFFECT_SEEN that no later record ends."""
    latest: dict[int, intervention_pb2.InterventionRecord] = {}
    ended: set[int] = set()
    for r in records:
        if r.WhichOneof("body") != "intervention":
            continue
        rec = r.intervention
        if rec.action == ipb.DROP:
            latest[rec.intervention_id] = rec
        elif rec.refers_to:
            ended.add(rec.refers_to)
    return [rec for iid, rec in sorted(latest.items())
            if iid not in ended and rec.outcome in _IN_FORCE]


def _next_id(records: Iterable[recording_pb2.Record]) -> int:
    top = 0
    for r in records:
        if r.WhichOneof("body") == "intervention":
            top = max(top, r.intervention.intervention_id)
    return top + 1


def removed_after_kill(recording: str, ktime_ns: int, why: str, *,
                       actor: ilog.Actor | None = None) -> list[intervention_pb2.InterventionRecord]:
    """REMOVED_AFTER_KILL records for every drop in force in ``recording`` (may be empty).
    A recording that cannot be read yields none; the caller's cleanup goes on regardless."""
    if not recording or not os.path.isfile(recording):
        return []
    from gewtui.recording import RecordingReader

    with RecordingReader(recording) as rd:
        records = [r for r in rd.records() if r.WhichOneof("body") == "intervention"]
    actor = actor or ilog.Actor.current()
    nid = _next_id(records)
    out = []
    for i, d in enumerate(drops_in_force(records)):
        left = (d.expires_ktime_ns - ktime_ns) / 1e9 if d.expires_ktime_ns else 0.0
        state = (f"{left:.0f} s of its time to live were left" if left > 0 else
                 "its time to live had already passed; the classifier had stopped dropping")
        out.append(ilog.ended(nid + i, d, ipb.REMOVED_AFTER_KILL, actor, ktime_ns=ktime_ns,
                              detail=f"{why}; drop #{d.intervention_id} of flow {d.flow_id} "
                                     f"removed by orphan cleanup; {state}"))
    return out
