"""Which flows a view must look at again: the flows changed at the cursor since the view last
looked, and the flows the filter shows there.

Place in the pipeline: the debugger core (gewtui.debugger.core) notes here the changes of
every event folded at the cursor; the view builder (gewtui.debugger.view_builder) rebuilds
only the rows of the ``dirty`` flows, then clears the set; a step or back under a filter asks
which flows are ``shown``. ``dirty`` None means every row: the cursor got another engine, or
the filter changed.
"""
from __future__ import annotations

from typing import Any, Sequence


class FlowMarks:
    def __init__(self) -> None:
        self.dirty: set[int] | None = None     # flows changed since the view last looked
        self._shown: set[int] | None = None    # flows the filter shows (None: recompute)

    def note(self, changes: Sequence[Any], engine: Any, flt: Any) -> None:
        """The changes folding one event at the cursor produced (``engine``: the cursor's)."""
        if self.dirty is not None:
            for c in changes:
                if c.flow_id:
                    self.dirty.add(c.flow_id)
        if flt and self._shown is not None:
            # Whether a flow matches changes only with a change to it (phase, template,
            # path, members), so re-testing the flows a change names keeps the set exact.
            for fid in {c.flow_id for c in changes if c.flow_id}:
                snap = engine.flow(fid)
                if snap is not None and flt.matches(snap):
                    self._shown.add(fid)
                else:
                    self._shown.discard(fid)

    def all_changed(self) -> None:
        self.dirty = None
        self._shown = None

    def shown(self, engine: Any, flt: Any) -> set[int]:
        """The flows ``flt`` shows at the cursor (``engine``)."""
        if self._shown is None:
            self._shown = {f.flow_id for f in engine.flows() if flt.matches(f)}
        return self._shown
