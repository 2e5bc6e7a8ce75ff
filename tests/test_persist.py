"""Persisted engine states (gewtui.model.persist): a restored engine folds on exactly like
one that never stopped, and a state that is foreign, damaged or hostile is refused in one
line without running anything."""
from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path

import pytest

from gewtui.errors import RecordingError
from gewtui.model import persist
from gewtui.model.engine import Engine
from gewtui.model.templates import load_templates, packaged_templates
from gewtui.pb import intervention_pb2
from gewtui.recording import open_recording

GOLDEN = sorted((Path(__file__).resolve().parent / "data" / "golden").glob("*.gewrec"))


def events(path: Path) -> list:
    with open_recording(path) as r:
        return list(r.iter_events())


def export(eng: Engine) -> bytes:
    return b"".join(f.SerializeToString(deterministic=True) for f in eng.flows()) + \
        b"".join(c.SerializeToString(deterministic=True) for c in eng.chains())


def restored(eng: Engine, **kw) -> Engine:
    data = persist.dumps(eng.checkpoint())
    return Engine.restore(persist.loads(data, eng.templates, **kw))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_fold_persist_restore_continue_matches_a_straight_fold(path: Path):
    evs = events(path)
    straight = Engine(session_id="s")
    for ev in evs:
        straight.feed(ev)
    want = export(straight)
    assert want
    for k in sorted({1, len(evs) // 3, len(evs) // 2, len(evs) - 1}):
        eng = Engine(session_id="s")
        for ev in evs[:k]:
            eng.feed(ev)
        eng = restored(eng, config=straight.checkpoint().config, session_id="s")
        assert eng.at_event_id == evs[k - 1].id
        changes = [eng.feed(ev) for ev in evs[k:]]
        assert export(eng) == want, f"{path.stem}: differs after a restore at event {k}"
        # the restored engine reports the same changes as the straight one did
        again = Engine(session_id="s")
        for ev in evs[:k]:
            again.feed(ev)
        assert [[(c.kind, c.flow_id) for c in again.feed(ev)] for ev in evs[k:]] == \
            [[(c.kind, c.flow_id) for c in ch] for ch in changes]
        assert eng.stats == straight.stats


def test_recent_events_and_evidence_survive():
    evs = events(GOLDEN[0])
    eng = Engine()
    for ev in evs:
        eng.feed(ev)
    back = restored(eng)
    for ev in evs[-50:]:
        assert back.event(ev.id) == eng.event(ev.id) == ev


def test_interventions_travel_with_the_state():
    evs = events(GOLDEN[0])
    eng = Engine()
    for ev in evs:
        eng.feed(ev)
    fid = eng.flow_ids()[0]
    rec = intervention_pb2.InterventionRecord(flow_id=fid, intervention_id=1, tty="pts/1")
    rec.gate.at_event_id = evs[-1].id
    eng.add_intervention(rec)
    back = restored(eng)
    assert back.chain(fid) == eng.chain(fid)


def test_dumps_is_deterministic_across_independent_folds():
    evs = events(GOLDEN[-1])
    a, b = Engine(session_id="x"), Engine(session_id="x")
    for ev in evs:
        a.feed(ev)
        b.feed(ev)
    assert persist.dumps(a.checkpoint()) == persist.dumps(b.checkpoint())


def _state(n: int = 200) -> tuple[Engine, bytes]:
    eng = Engine(session_id="s")
    for ev in events(GOLDEN[0])[:n]:
        eng.feed(ev)
    return eng, persist.dumps(eng.checkpoint())


def _one_line(e: pytest.ExceptionInfo) -> str:
    assert isinstance(e.value, RecordingError)
    assert "\n" not in e.value.message and e.value.message.startswith("engine state:")
    return e.value.message


def test_another_template_set_config_or_session_is_refused(tmp_path: Path):
    eng, data = _state()
    from gewtui.resources import templates_dir
    src = sorted(Path(templates_dir()).glob("*.toml"))[0]
    text = src.read_text()
    (tmp_path / src.name).write_text(text.replace('title = "', 'title = "tuned ', 1))
    other = load_templates([tmp_path], allow_override=[src.stem])
    assert other.overridden == (src.stem,)
    assert persist.template_digest(other) != persist.template_digest(packaged_templates())
    with pytest.raises(persist.StateError) as e:
        persist.loads(data, other)
    assert "template" in _one_line(e)
    with pytest.raises(persist.StateError) as e:
        persist.loads(data, eng.templates, config=(1, 2, 3))
    _one_line(e)
    with pytest.raises(persist.StateError) as e:
        persist.loads(data, eng.templates, session_id="other")
    _one_line(e)


def test_another_model_layout_is_refused():
    eng, data = _state()
    h = persist.header(data)
    assert h["model"] == persist.MODEL_ID
    start = len(persist.MAGIC) + 4 + persist._U32.unpack_from(data, len(persist.MAGIC))[0]
    body = zlib.decompress(data[start:-4])
    h["model"] = "gew-engine-state/0 0000000000000000"
    import json
    hb = json.dumps(h).encode()
    forged = persist.MAGIC + persist._U32.pack(len(hb)) + hb + zlib.compress(body)
    forged += persist._U32.pack(zlib.crc32(forged))
    with pytest.raises(persist.StateError) as e:
        persist.loads(forged, eng.templates)
    assert "layout" in _one_line(e)


def test_every_truncation_and_a_sample_of_bit_flips_are_refused_or_identical():
    eng, data = _state(80)
    want = export(Engine.restore(persist.loads(data, eng.templates)))
    for cut in list(range(0, 64)) + list(range(64, len(data), max(1, len(data) // 200))):
        with pytest.raises(persist.StateError) as e:
            persist.loads(data[:cut], eng.templates)
        _one_line(e)
    for i in range(0, len(data), max(1, len(data) // 300)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(persist.StateError) as e:
            persist.loads(bytes(bad), eng.templates)
        _one_line(e)
    assert export(Engine.restore(persist.loads(data, eng.templates))) == want


def _forge(body: bytes, data: bytes, size: int | None = None) -> bytes:
    """A well-formed container (magic, header, checksum) around a hostile body."""
    h = persist.header(data)
    h["size"] = len(body) if size is None else size
    import json
    hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    out = persist.MAGIC + persist._U32.pack(len(hb)) + hb + zlib.compress(body)
    return out + persist._U32.pack(zlib.crc32(out))


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/gew-persist-pwned",))


def test_a_hostile_pickle_cannot_reach_any_callable(tmp_path: Path):
    eng, data = _state()
    for payload in (pickle.dumps(_Boom()), pickle.dumps(({}, [], {1: _Boom()})),
                    pickle.dumps(eng.templates.__class__), b"cos\nsystem\n(S'true'\ntR.",
                    pickle.dumps(io.BytesIO(b"x"))):
        with pytest.raises(persist.StateError) as e:
            persist.loads(_forge(payload, data), eng.templates)
        _one_line(e)
    assert not Path("/tmp/gew-persist-pwned").exists()


def test_a_state_with_wrong_types_is_refused_before_use():
    eng, data = _state()
    cp = persist.loads(data, eng.templates)
    body = {k: getattr(cp.reg, k) for k in cp.reg.__slots__ if k not in ("matcher", "ring")}
    body["terminated"] = list(body["terminated"])
    ring = [None] * cp.config[2]
    for k, v in (("flows", []), ("now", "late"), ("flows", {1: "not a flow"})):
        bad = dict(body, **{k: v})
        with pytest.raises(persist.StateError) as e:
            persist.loads(_forge(pickle.dumps((bad, ring, {})), data), eng.templates)
        _one_line(e)
    with pytest.raises(persist.StateError):
        persist.loads(_forge(pickle.dumps((body, ring[:3], {})), data), eng.templates)


def test_a_decompression_bomb_is_refused():
    eng, data = _state()
    bomb = _forge(b"\0" * (1 << 26), data, size=1 << 29)
    with pytest.raises(persist.StateError) as e:
        persist.loads(bomb, eng.templates)
    _one_line(e)


def test_a_state_whose_flows_lack_fields_or_hold_the_wrong_kinds_is_refused():
    """Objects of the allowed classes pass the unpickler; what they hold is checked before
    the state is used, so a forged flow fails in loads, never in a later fold."""
    from gewtui.model.entities import Flow

    eng, data = _state()
    cp = persist.loads(data, eng.templates)
    body = {k: getattr(cp.reg, k) for k in cp.reg.__slots__ if k not in ("matcher", "ring")}
    body["terminated"] = list(body["terminated"])
    ring = [None] * cp.config[2]
    fid, real = next(iter(body["flows"].items()))
    empty = Flow.__new__(Flow)
    wrong = real.clone({})
    wrong.n_events = "many"
    for forged in (empty, wrong):
        flows = dict(body["flows"])
        flows[fid] = forged
        bad = dict(body, flows=flows)
        with pytest.raises(persist.StateError) as e:
            persist.loads(_forge(pickle.dumps((bad, ring, {})), data), eng.templates)
        _one_line(e)
