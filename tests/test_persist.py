"""Persisted engine states (gewtui.model.persist): a restored engine folds on exactly like
one that never stopped, and a state that is foreign, damaged or hostile is refused in one
line, in bounded time and memory, before anything in it is used."""
from __future__ import annotations

import json
import os
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from gewtui.errors import GewError, RecordingError
from gewtui.model import persist, state_codec, state_key, state_schema
from gewtui.model.engine import Engine
from gewtui.model.templates import load_templates, packaged_templates
from gewtui.pb import engine_state_pb2, intervention_pb2
from gewtui.recording import open_recording

@pytest.fixture(autouse=True)
def host_key(tmp_path_factory, monkeypatch):
    """This host's state key, in a private directory of the test's own."""
    if os.geteuid() != 0:
        pytest.skip("stored states are authenticated with a root-only key")
    d = tmp_path_factory.getbasetemp() / "host-key"
    d.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setattr(state_key, "KEY_DIR", str(d))
    state_key.forget()
    yield str(d)
    state_key.forget()


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


def _sign(data: bytes) -> bytes:
    """``data`` (a state without its tag) authenticated with this host's key, as gew would:
    what follows tests what the decoder does with a state that passes authentication."""
    import hashlib
    import hmac
    return data + hmac.new(state_key.state_key(), data, hashlib.sha256).digest()


def _forge(body: bytes, data: bytes, size: int | None = None, **fields) -> bytes:
    """A well-formed, authenticated container (magic, header, tag) around a hostile body
    (the zlib of ``body``)."""
    h = persist.header(data)
    h["size"] = len(body) if size is None else size
    h.update(fields)
    hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    return _sign(persist.MAGIC + persist._U32.pack(len(hb)) + hb + zlib.compress(body))


def _body(data: bytes) -> engine_state_pb2.EngineState:
    start = len(persist.MAGIC) + 4 + persist._U32.unpack_from(data, len(persist.MAGIC))[0]
    return engine_state_pb2.EngineState.FromString(zlib.decompress(data[start:-persist.MAC_BYTES]))


def test_another_model_layout_is_refused():
    eng, data = _state()
    assert persist.header(data)["model"] == persist.MODEL_ID
    body = _body(data).SerializeToString()
    with pytest.raises(persist.StateError) as e:
        persist.loads(_forge(body, data, model="gew-engine-state/0 0000000000000000"), eng.templates)
    assert "layout" in _one_line(e)
    assert persist.loads(_forge(body, data), eng.templates).event_index == 200


def test_every_model_slot_is_in_the_state_schema():
    """A slot added to a model class must be named in gewtui.model.state_schema.SCHEMA
    (one line: its name and what it holds); otherwise this fails, and dumps would too."""
    assert state_schema.uncovered() == []
    from gewtui.model.entities import Flow, IfaceContext, Member
    from gewtui.model.flows import Registry
    from gewtui.model.matcher import Episode, Progress
    assert set(state_schema.SCHEMA) == {Registry, Flow, Member, IfaceContext, Progress, Episode}


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


def test_a_state_made_with_another_key_or_without_root_is_refused(tmp_path, monkeypatch):
    eng, data = _state()
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    monkeypatch.setattr(state_key, "KEY_DIR", str(other))
    state_key.forget()
    foreign = persist.dumps(eng.checkpoint())
    with pytest.raises(persist.StateError) as e:
        persist.loads(data, eng.templates)
    assert "not written by this host" in _one_line(e)
    persist.loads(foreign, eng.templates)
    monkeypatch.setattr(state_key.os, "geteuid", lambda: 1000)
    state_key.forget()
    with pytest.raises(persist.StateError) as e:
        persist.loads(foreign, eng.templates)
    assert "not authenticated" in _one_line(e)


def test_the_key_directory_must_be_root_owned_0700_and_is_never_repaired(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("creating the host key needs root")
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    owned = tmp_path / "owned"
    owned.mkdir(mode=0o700)
    os.chown(owned, 65534, 65534)
    for d in (loose, link, owned):
        monkeypatch.setattr(state_key, "KEY_DIR", str(d))
        state_key.forget()
        with pytest.raises(GewError) as e:
            state_key.state_key(create=True)
        assert "\n" not in e.value.message and str(d) in e.value.message
    assert os.stat(loose).st_mode & 0o777 == 0o755 and not list(loose.iterdir())
    assert link.is_symlink() and not list(real.iterdir())
    assert os.stat(owned).st_uid == 65534 and not list(owned.iterdir())
    # created once, exclusively, 0600; a second call reads the same key
    fresh = tmp_path / "fresh"
    monkeypatch.setattr(state_key, "KEY_DIR", str(fresh))
    state_key.forget()
    k = state_key.state_key(create=True)
    st = os.stat(fresh / state_key.KEY_NAME)
    assert (os.stat(fresh).st_mode & 0o777, st.st_mode & 0o777, st.st_uid) == (0o700, 0o600, 0)
    state_key.forget()
    assert state_key.state_key() == k and len(k) == 32
    # a key file planted as a link is refused, not followed
    os.unlink(fresh / state_key.KEY_NAME)
    (fresh / state_key.KEY_NAME).symlink_to(tmp_path / "elsewhere")
    state_key.forget()
    with pytest.raises(GewError):
        state_key.state_key(create=True)
    assert not (tmp_path / "elsewhere").exists()


def test_a_state_with_wrong_types_is_refused_before_use():
    """Each registry slot is decoded as the schema says; any other value is refused."""
    eng, data = _state()
    msg = _body(data)
    reg = msg.registry
    shape = bytearray(reg.shape)
    # the first slot after the registry's opcode is silence_ns (an int): make it a string
    assert shape[1] == state_codec.INT
    for op in (state_codec.STR, state_codec.LIST, state_codec.OBJ, state_codec.NONE, 255):
        bad = engine_state_pb2.EngineState()
        bad.CopyFrom(msg)
        bad.registry.shape = bytes(shape[:1]) + bytes([op]) + bytes(shape[2:])
        with pytest.raises(persist.StateError) as e:
            persist.loads(_forge(bad.SerializeToString(), data), eng.templates)
        _one_line(e)
    bad = engine_state_pb2.EngineState()
    bad.CopyFrom(msg)
    del bad.ring[3:]
    with pytest.raises(persist.StateError):
        persist.loads(_forge(bad.SerializeToString(), data), eng.templates)


def test_a_decompression_bomb_is_refused_in_bounded_memory():
    eng, data = _state()
    zeros = b"\0" * (1 << 26)
    bombs = [_forge(zeros, data, size=size) for size in (1 << 29, 1 << 26)]
    del zeros
    tracemalloc.start()
    try:
        for bomb in bombs:
            with pytest.raises(persist.StateError) as e:
                persist.loads(bomb, eng.templates)
            _one_line(e)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak


def test_a_value_bomb_is_refused_before_anything_is_built():
    """Counts larger than what follows them, and more values than a state may hold."""
    eng, data = _state()
    tooth = engine_state_pb2.EngineState()
    tooth.CopyFrom(_body(data))
    reg = tooth.registry
    reg.shape = bytes([state_codec.OBJ, state_codec.LIST])
    reg.ints[:] = [1 << 40]
    with pytest.raises(persist.StateError) as e:
        persist.loads(_forge(tooth.SerializeToString(), data), eng.templates)
    _one_line(e)
    reg.shape = bytes([state_codec.NONE]) * (persist.MAX_VALUES + 1)
    reg.heap = os.urandom(persist.MAX_VALUES // 24)    # so its ratio looks ordinary
    t0 = time.perf_counter()
    with pytest.raises(persist.StateError) as e:
        persist.loads(_forge(tooth.SerializeToString(), data), eng.templates)
    assert "more values" in _one_line(e) and time.perf_counter() - t0 < 5


def test_a_hash_collision_bomb_is_refused_in_linear_time():
    """Keys whose tuple hashes collide (ints hash predictably) would make building a dict
    quadratic: more than a few keys sharing a hash refuse the state before the dict is
    built (tests/security/test_checkpoint_forgery.py times 40,000 of them end to end)."""
    from tests.security.checkpoint_forge import _colliding_pairs

    eng = Engine(session_id="s")
    for ev in events(GOLDEN[0])[:200]:
        eng.feed(ev)
    cp = eng.checkpoint()
    fid = next(iter(cp.reg.flows))
    cp.reg.listeners = {k: fid for k in _colliding_pairs(3_000)}
    data = persist.dumps(cp)
    with pytest.raises(persist.StateError) as e:
        persist.loads(data, eng.templates)
    assert "share a hash" in _one_line(e)


def test_a_state_whose_references_do_not_hold_is_refused():
    """Indexes that name flows or sockets that are not there, open matches of templates
    that do not exist: refused in loads, so no later fold meets them."""
    from gewtui.model.matcher import Progress

    evs = events(GOLDEN[0])
    for edit in (lambda r: r.keys.update({next(iter(r.keys)): 999_999}),
                 lambda r: r.listeners.update({(1, 2): 999_999}),
                 lambda r: r.peers.update({b"\x01\x02\x03\x04": [999_999]}),
                 lambda r: setattr(r, "next_fid", 1),
                 lambda r: r.socks.update({12345: next(iter(r.socks.values()))}),
                 lambda r: setattr(next(iter(r.flows.values())), "phase", 9),
                 lambda r: setattr(next(iter(r.flows.values())), "tstate", [None]),
                 lambda r: _progress_at(r, Progress(slot=10_000))):
        eng = Engine(session_id="s")
        for ev in evs[:40]:
            eng.feed(ev)
        cp = eng.checkpoint()
        if not cp.reg.socks:
            continue
        edit(cp.reg)
        try:
            data = persist.dumps(cp)
        except persist.StateError:
            continue            # not even writable
        with pytest.raises(persist.StateError) as e:
            persist.loads(data, eng.templates)
        _one_line(e)


def _progress_at(reg, p) -> None:
    next(iter(reg.flows.values())).tstate = p
