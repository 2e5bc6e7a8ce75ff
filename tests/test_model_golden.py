"""Golden tests: real lab recordings replayed through the observation plane.

Each ``tests/data/golden/<name>.gewrec`` (made with the real probes; the commands that made
them are in tests/data/golden/README.md) has a sidecar ``<name>.expect.json``:

    {"no_templates": true}                      # e.g. healthy
    {"templates": ["connection-refused"],       # must fire on some flow
     "only_templates": ["connection-refused"],  # nothing else may
     "flows": [{"key_contains": ":8081", "phase": "TERMINATED",
                "templates": ["connection-refused"], "min_connections": 1}]}

Matching is partial: these facts must be present, others may be too. Every recording is also
replayed twice to check that snapshot exports are byte-identical.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gewtui.model.engine import Engine
from gewtui.pb import model_pb2

DATA = Path(__file__).resolve().parent / "data"
RECORDINGS = sorted(DATA.glob("golden/*.gewrec")) + sorted(DATA.glob("*.gewrec"))


def replay(path: Path) -> Engine:
    from gewtui.recording import open_recording
    eng = Engine()
    with open_recording(path) as r:
        for ev in r.iter_events():
            eng.feed(ev)
    return eng


def export(eng: Engine) -> bytes:
    return b"".join(f.SerializeToString(deterministic=True) for f in eng.flows()) + \
        b"".join(c.SerializeToString(deterministic=True) for c in eng.chains())


def test_every_lab_scenario_has_a_golden_recording():
    from gewtui.lab.scenarios import SCENARIOS

    have = {p.stem for p in RECORDINGS}
    base = {name for name in SCENARIOS if not name.endswith("6")}
    assert base <= have, f"lab scenarios without a golden recording: {sorted(base - have)}"


if RECORDINGS:
    @pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
    def test_golden_recording(path: Path):
        side = path.with_suffix(".expect.json")
        assert side.is_file(), f"{side.name} missing beside {path.name}"
        want = json.loads(side.read_text())
        eng = replay(path)
        flows = eng.flows()
        fired = {t for f in flows for t in f.templates}
        if want.get("no_templates"):
            assert fired == set(), fired
        assert set(want.get("templates", ())) <= fired, fired
        if "only_templates" in want:
            assert fired <= set(want["only_templates"]), fired
        for spec in want.get("flows", ()):
            hits = [f for f in flows if spec.get("key_contains", "") in f.key
                    and ("phase" not in spec or model_pb2.FlowPhase.Name(f.phase) == spec["phase"])
                    and set(spec.get("templates", ())) <= set(f.templates)
                    and f.counters.connections >= spec.get("min_connections", 0)]
            assert hits, f"no flow matches {spec}: {[(f.key, f.templates) for f in flows]}"
        if "causes" in want:   # cause rules that must link an effect to its cause on some flow
            linked = {n.fields.get("rule") for ch in eng.chains() for n in ch.root.children
                      if n.kind == "cause"}
            assert set(want["causes"]) <= linked, linked
        assert export(replay(path)) == export(eng)
