"""`drop N` and `undo [N]` through the debugger's command language, with the real controller
(over fakes for the kernel side): the typed confirmation reaches the gate, refusals come back
as one error line naming the failed conditions, undo removes at once."""
from __future__ import annotations

from gewtui.debugger import commands
from gewtui.pb import intervention_pb2 as ipb
from tests.support.intervention_fakes import deny_tuple, setup


def texts(outs):
    return [(getattr(o, "text", ""), getattr(o, "level", "")) for o in outs]


def test_drop_then_undo():
    ctx, backend, src = setup("2")
    (msg,) = texts(commands.execute(ctx, "drop 2"))
    assert "drop flow 2: active" in msg[0]
    assert set(backend.map) == {deny_tuple(2)}
    assert [r.outcome for r in src.interventions] == [ipb.ACTIVE]
    (msg,) = texts(commands.execute(ctx, "undo"))
    assert "undone" in msg[0] and "ends #1" in msg[0]
    assert backend.map == {} and not backend.attached
    (msg,) = texts(commands.execute(ctx, "undo 2"))
    assert msg[1] == "error" and "no active drop" in msg[0]


def test_typed_id_of_another_flow_is_refused_and_named():
    ctx, backend, src = setup("1")           # the operator typed 1 into flow 2's dialog
    (msg,) = texts(commands.execute(ctx, "drop 2"))
    assert msg[1] == "error" and "confirmation" in msg[0] and "refused" in msg[0]
    assert backend.map == {}
    assert [r.outcome for r in src.interventions] == [ipb.REFUSED]


def test_cancelled_confirmation_does_nothing():
    ctx, backend, src = setup("")
    (msg,) = texts(commands.execute(ctx, "drop 1"))
    assert "cancelled" in msg[0] and backend.map == {} and src.interventions == []


def test_no_controller_means_no_drop_and_no_undo():
    ctx, backend, src = setup("1")
    ctx.debugger.intervention = None
    for line in ("drop 1", "undo"):
        (msg,) = texts(commands.execute(ctx, line))
        assert msg[1] == "error"
