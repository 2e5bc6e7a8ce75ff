"""The safety gate, condition by condition, and where the override may (not) come from."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gewtui.errors import GateRefused
from gewtui.intervene import gate as g
from gewtui.intervene.gate import (CONDITIONS, Confirmation, LocalOverride, SessionContext,
                                   evaluate_gate, failed_conditions, refusal)
from gewtui.pb import model_pb2, recording_pb2

ROOT = Path(__file__).resolve().parent.parent
SID = "s-test"
ARGV_OK = ["gew-tui", "--lab", "lossy", "--allow-intervention"]
NOW = 1_000_000_000_000


def flow(fid: int = 17, in_scope: bool = True, templates=("retransmission-storm",)):
    return model_pb2.FlowSnapshot(flow_id=fid, in_scope=in_scope, templates=list(templates))


def chain(fid: int = 17, allowed=("drop",), layer=model_pb2.L3, session_id: str = SID):
    c = model_pb2.ReasonChain(flow_id=fid, at_event_id=99, session_id=session_id,
                              allowed_interventions=list(allowed))
    c.root.layer = layer
    c.root.flow_id = fid
    return c


def session(**kw) -> SessionContext:
    base = dict(session_id=SID, allow_intervention=True, argv=ARGV_OK, now_ns=NOW,
                at_event_id=123, ktime_ns=456)
    base.update(kw)
    return SessionContext.live(**base)


def confirm(typed="17", fid=17, sid=SID, age_ns=1_000_000_000) -> Confirmation:
    return Confirmation(typed=typed, flow_id=fid, session_id=sid, created_ns=NOW - age_ns)


def cond(ev, name):
    return next(c for c in ev.conditions if c.name == name)


def test_all_conditions_met_allows_and_names_all_six():
    ev = evaluate_gate(flow(), chain(), session(), confirm())
    assert ev.allowed
    assert [c.name for c in ev.conditions] == list(CONDITIONS)
    assert all(c.ok and c.why for c in ev.conditions)
    assert (ev.at_event_id, ev.ktime_ns) == (123, 456)


@pytest.mark.parametrize("args, failing", [
    (dict(f=flow(in_scope=False)), {"scope"}),
    (dict(f=None), {"scope", "confirmation"}),
    (dict(c=chain(allowed=())), {"template"}),
    (dict(c=chain(allowed=("redirect",))), {"template"}),
    (dict(c=None), {"template", "reason-chain"}),
    (dict(c=chain(layer=model_pb2.L2)), {"reason-chain"}),
    (dict(c=chain(fid=18)), {"reason-chain"}),
    (dict(c=chain(session_id="other")), {"reason-chain"}),
    (dict(s=session(allow_intervention=False)), {"override"}),
    (dict(s=session(argv=["gew-tui", "--lab", "lossy"])), {"override"}),
    (dict(s=session(lost_records=3)), {"complete"}),
    (dict(s=session(observation_complete=False, incomplete_reason="iface gone")), {"complete"}),
    (dict(k=None), {"confirmation"}),
    (dict(k=confirm(typed="18")), {"confirmation"}),
    (dict(k=confirm(typed="drop it")), {"confirmation"}),
    (dict(k=confirm(fid=18, typed="17")), {"confirmation"}),
    (dict(k=confirm(sid="s-other")), {"confirmation"}),
    (dict(k=confirm(age_ns=g.CONFIRMATION_MAX_AGE_NS + 1)), {"confirmation"}),
    (dict(k=confirm(age_ns=-5)), {"confirmation"}),
])
def test_each_failure_is_named_and_refuses(args, failing):
    ev = evaluate_gate(args["f"] if "f" in args else flow(),
                       args["c"] if "c" in args else chain(),
                       args.get("s", session()),
                       args["k"] if "k" in args else confirm())
    assert not ev.allowed
    assert set(failed_conditions(ev)) == failing
    err = refusal(ev, 17)
    assert isinstance(err, GateRefused) and err.code == 77
    for name in failing:
        assert name in err.message
    assert "\n" not in err.message


def test_refusal_names_every_failed_condition():
    ev = evaluate_gate(flow(in_scope=False), None, session(allow_intervention=False,
                       lost_records=1), None)
    assert set(failed_conditions(ev)) == set(CONDITIONS)
    msg = refusal(ev, 17).message
    assert msg.startswith("drop of flow 17 refused: ")
    for name in CONDITIONS:
        assert f"{name} (" in msg


def test_typed_forms():
    assert g.typed_flow_id("17") == 17
    assert g.typed_flow_id(" f17 ") == 17
    assert g.typed_flow_id("#17") == 17
    for bad in ("", "f", "17a", "1 7", "0x11", "flow 17", "-17"):
        assert g.typed_flow_id(bad) is None, bad
    assert evaluate_gate(flow(), chain(), session(), confirm(typed="f17")).allowed


def test_used_confirmation_is_refused():
    k = confirm()
    assert evaluate_gate(flow(), chain(), session(), k).allowed
    ev = evaluate_gate(flow(), chain(), session(used_confirmations=frozenset({k.nonce})), k)
    assert failed_conditions(ev) == ["confirmation"]
    assert Confirmation.typed_now("17", 17, SID).nonce != Confirmation.typed_now("17", 17, SID).nonce


def test_unknown_action_is_an_error():
    with pytest.raises(ValueError):
        evaluate_gate(flow(), chain(), session(), confirm(), action="redirect")


# -- where the override comes from -------------------------------------------------------

@pytest.mark.parametrize("argv, ok", [
    (["gew", "session", "apply", "--allow-intervention"], True),
    (["gew-tui", "--allow-interv"], True),                   # argparse's unambiguous prefix
    (["gew-tui", "--allow-i"], True),
    (["gew-tui", "--allow-"], False),                        # ambiguous with --allow-risky
    (["gew-tui", "--allow-risky"], False),
    (["gew-tui", "--allow-intervention-please"], False),
    (["gew", "shell", "--", "--allow-intervention"], False),  # an operand, not an option
    (["gew-tui"], False),
])
def test_flag_on_command_line(argv, ok):
    assert g.flag_on_command_line(argv) is ok
    assert (LocalOverride.from_command_line(True, argv) is not None) is ok


def test_override_needs_both_the_option_and_the_command_line():
    assert LocalOverride.from_command_line(False, ARGV_OK) is None
    assert LocalOverride.from_command_line(True, ["gew-tui"]) is None
    with pytest.raises(TypeError):
        LocalOverride(object(), tuple(ARGV_OK))


def test_config_file_saying_allow_is_not_an_override(tmp_path):
    # Whatever a config loader hands the session, the flag is not on the command line.
    cfg = tmp_path / "gew.toml"
    cfg.write_text("allow_intervention = true\nallow_risky = true\n")
    s = SessionContext.live(SID, True, argv=["gew-tui", "--config", str(cfg)], now_ns=NOW)
    assert s.override is None and s.override_requested
    ev = evaluate_gate(flow(), chain(), s, confirm())
    assert failed_conditions(ev) == ["override"]
    assert "only the local command line counts" in cond(ev, "override").why


def test_replayed_recording_never_carries_the_override():
    hdr = recording_pb2.RecordingHeader()
    hdr.session.session_id = SID
    hdr.session.allow_intervention = True
    s = SessionContext.from_recording(hdr, now_ns=NOW, override=LocalOverride.from_command_line(
        True, ARGV_OK))
    assert s.replay and s.override is None
    ev = evaluate_gate(flow(), chain(), s, confirm())
    assert failed_conditions(ev) == ["override"]
    assert "inert" in cond(ev, "override").why


_PROBE = ("import sys; from gewtui.intervene.gate import SessionContext as S; "
          "s = S.live('x', True); print('override' if s.override else 'none')")


def _probe(extra_args, env_extra):
    env = dict(os.environ, **env_extra)
    r = subprocess.run([sys.executable, "-c", _PROBE, *extra_args], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_real_process_command_line_is_what_counts():
    # The process's own /proc/self/cmdline, read by the default path.
    assert _probe(["--allow-intervention"], {}) == "override"
    assert _probe([], {}) == "none"


@pytest.mark.parametrize("env", [
    {"GEW_ALLOW_INTERVENTION": "1"},
    {"GEW_TUI_ALLOW_INTERVENTION": "true"},
    {"ALLOW_INTERVENTION": "1"},
    {"GEW_ARGS": "--allow-intervention"},
    {"GEW_TUI_OPTS": "--allow-intervention --allow-risky"},
])
def test_environment_never_sets_the_override(env):
    assert _probe([], env) == "none"
