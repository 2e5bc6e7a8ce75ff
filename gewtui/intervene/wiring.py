"""The intervention controller's views of a gewtui.kernel LiveSession.

Place in the pipeline: the TUI, the shell and `gew session apply` own a LiveSession and an
engine; ``controller_for(live, engine)`` (gewtui.intervene.controller) gives them the
controller for it, which wraps the session with ``adapt_live``. The views here
turn the live session into what the controller asks for (gate facts, scope, the session's
manifest-recording tc hook) and its recording writer into a recorder whose failure is seen:
LiveSession drops its writer after a write error, which must read as "the log failed", never
as "this session does not record".

Threading: the recording writer is single-threaded, so the controller's methods must be
called on the thread that polls the live session (the pump); the UI posts the operator's
drop/undo there. Order at shutdown: ``controller.close(...)`` first (its end records go into
the recording), then ``live.close(...)``.
"""
from __future__ import annotations

from typing import Any

from gewtui.errors import RecordingError
from gewtui.intervene.ports import GateFacts, ReplayInert


class LiveSessionView:
    """The controller's view of an open LiveSession."""

    is_live = True
    replay = False

    def __init__(self, live: Any):
        if getattr(live, "session", None) is None or getattr(live, "scope", None) is None:
            raise ReplayInert("interventions need an open live session")
        self.live = live
        self.session_id: str = live.session_id
        self.allow_intervention: bool = bool(live.allow_intervention)

    @property
    def scope(self) -> Any:
        return self.live.scope

    def gate_facts(self) -> GateFacts:
        st = self.live.stats
        return GateFacts(st.complete, st.lost, st.incomplete_reason, st.events)

    def add_tc_filter(self, *args: Any, **kw: Any) -> Any:
        return self.live.session.add_tc_filter(*args, **kw)

    def remove_tc_filter(self, rec: Any) -> None:
        self.live.session.remove_tc_filter(rec)


class LiveRecorder:
    """The live session's recording writer, looked up at each use."""

    def __init__(self, live: Any):
        self.live = live

    @property
    def failed(self) -> RecordingError | None:
        w = self.live.writer
        if w is None:
            if self.live.record_path:
                return RecordingError(f"recording {self.live.record_path} stopped after a write failure")
            return None
        return w.failed

    def write(self, record: Any) -> None:
        w = self.live.writer
        if w is None:
            if self.live.record_path:
                raise self.failed  # type: ignore[misc]
            return
        w.write(record)

    def flush(self) -> None:
        if self.live.writer is not None:
            self.live.writer.flush()


def adapt_live(session: Any, recorder: Any) -> tuple[Any, Any]:
    """A gewtui.kernel LiveSession given directly is wrapped in its views; its raw recording
    writer is replaced by the view that notices the writer failing or being dropped.
    Anything else (a test's fake session) is handed back as it is."""
    from gewtui.kernel.live import LiveSession

    if not isinstance(session, LiveSession):
        return session, recorder
    if recorder is None or recorder is session.writer:
        recorder = LiveRecorder(session) if session.record_path else None
    return LiveSessionView(session), recorder
