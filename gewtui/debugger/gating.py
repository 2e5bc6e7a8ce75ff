"""The debugger's side of interventions: what the gate says about a flow, and the ``drop``
hook of the command language.

Place in the pipeline: the view builder asks ``gate_view`` for the selected flow (the
intervention panel renders it); the ``drop`` command calls ``request_drop``, which asks the
front end for the typed confirmation and hands it to the injected intervention controller
(gewtui.intervene.controller, built by the CLI over a live session). Both use the pure gate
module only; executing a drop is the controller's business.

The gate is evaluated against the *head* of a live session (what a drop would act on now),
and against the cursor in a replay (where every drop is refused: a replay is inert).
"""
from __future__ import annotations

from typing import Callable

from gewtui.debugger import view_values
from gewtui.debugger.core import Debugger
from gewtui.debugger.view import GateView
from gewtui.errors import UsageError
from gewtui.intervene import gate as gatemod


def session_context(d: Debugger) -> gatemod.SessionContext:
    st = d.source.stats()
    info = d.source.info()
    head_pos = len(d.log) if d.live else d.position
    at = d.log.event_id(head_pos - 1) if head_pos else 0
    kw = dict(observation_complete=st.complete, lost_records=st.lost,
              incomplete_reason=st.incomplete_reason, at_event_id=at,
              ktime_ns=d.log.ktime(head_pos - 1) if head_pos else 0)
    if d.live:
        return gatemod.SessionContext.live(info.session_id, info.allow_intervention, **kw)
    header = info.header
    if header is None:
        return gatemod.SessionContext(session_id=info.session_id, replay=True, **kw)
    return gatemod.SessionContext.from_recording(header, **kw)


def gate_view(d: Debugger, flow_id: int) -> GateView:
    """Each gate condition for ``flow_id`` as a drop would meet it now (no confirmation yet:
    that one is asked for when the operator drops)."""
    eng = d.head_engine
    ev = gatemod.evaluate_gate(eng.flow(flow_id), eng.chain(flow_id), session_context(d), None)
    v = view_values.gate_evaluation_view(ev)
    where = "the newest event" if d.live else "the cursor"
    return GateView(v.allowed, v.conditions, v.at_event_id, note=f"as of {where}")


# The operator's typed answer, stamped when the question was put: the front ends build it
# through this port, never from gewtui.intervene themselves.
Answer = gatemod.Answer
Confirm = Callable[[str, int], "str | Answer | None"]


def request_drop(d: Debugger, flow_id: int, confirm: Confirm | None) -> str:
    """Ask for the typed confirmation and hand the drop to the controller. Raises a GewError
    (one line) when there is no controller, nobody to confirm, or the gate refuses."""
    controller = d.intervention
    if controller is None:
        why = ("a replayed recording is inert" if not d.live
               else "this session was not started with --allow-intervention")
        raise UsageError(f"drop refused: no intervention controller ({why})")
    if confirm is None:
        raise UsageError("drop refused: this front end cannot ask for the typed confirmation")
    # A callback that asks now is stamped from before it asks; a front end that asked
    # earlier (a dialog) hands back an Answer stamped when its dialog opened.
    ask = Answer.opener()
    typed = confirm(f"Drop flow {flow_id}'s packets? Type the flow id ({flow_id}) to confirm",
                    flow_id)
    answer = typed if isinstance(typed, Answer) else ask(typed) if typed is not None else None
    if answer is None or not answer.text.strip():
        return f"drop of flow {flow_id} cancelled"
    confirmation = gatemod.Confirmation.from_answer(answer, flow_id, d.source.info().session_id)
    rec = controller.request_drop(flow_id, confirmation)
    from gewtui.intervene.log import describe

    d.changed()
    return describe(rec)


def request_undo(d: Debugger, flow_id: int | None) -> str:
    """Remove a drop at once: flow N's, or the latest one. Raises a GewError (one line) when
    there is no controller or no such drop."""
    controller = d.intervention
    if controller is None:
        raise UsageError("undo: no intervention controller (no drop can be active)")
    rec = controller.undo(flow_id=flow_id)
    from gewtui.intervene.log import describe

    d.changed()
    return describe(rec)
