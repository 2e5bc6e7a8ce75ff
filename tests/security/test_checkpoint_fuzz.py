"""Fuzzing the engine-state decoder (gewtui.model.persist, gewtui.model.state_schema).

States here are authenticated with the host key, so the fuzzer reaches everything behind
the HMAC: the header, inflation, the protobuf, the schema-driven decoder and the checks of
the registry's references. Whatever it builds, ``loads`` returns a Checkpoint or raises the
module's one ``StateError``, within a deadline and a memory bound; and a state it accepts
folds on without an exception (a state that loads can never fail a later fold).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gewtui.model import persist, state_codec, state_key
from gewtui.model.engine import Engine
from gewtui.pb import engine_state_pb2
from gewtui.recording import open_recording

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the host key is root-only")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
MEMORY = 64 << 20
FUZZ = settings(max_examples=300, deadline=3000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-key")
    os.chmod(d, 0o700)
    old = state_key.KEY_DIR
    state_key.KEY_DIR = str(d)
    state_key.forget()
    with open_recording(GOLDEN / "lossy.gewrec") as r:
        evs = list(r.iter_events())
    eng = Engine(session_id="s", recent_events=16)
    cut = len(evs) // 2
    for ev in evs[:cut]:
        eng.feed(ev)
    data = persist.dumps(eng.checkpoint())
    start = len(persist.MAGIC) + 4 + persist._U32.unpack_from(data, len(persist.MAGIC))[0]
    body = engine_state_pb2.EngineState.FromString(zlib.decompress(data[start:-persist.MAC_BYTES]))
    yield {"eng": eng, "data": data, "body": body, "rest": evs[cut:], "key": state_key.state_key()}
    state_key.KEY_DIR = old
    state_key.forget()


def _signed(base, payload: bytes, **header) -> bytes:
    h = persist.header(base["data"])
    h["size"] = len(payload)
    h.update(header)
    hb = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    out = persist.MAGIC + persist._U32.pack(len(hb)) + hb + zlib.compress(payload, 1)
    return out + hmac.new(base["key"], out, hashlib.sha256).digest()


def _load_and_fold(base, data: bytes) -> None:
    """loads, then (if it accepted the state) fold on from it and build every chain."""
    tracemalloc.start()
    try:
        try:
            cp = persist.loads(data, base["eng"].templates)
        except persist.StateError as e:
            assert "\n" not in e.message
            return
        eng = Engine.restore(cp)
        for ev in base["rest"]:
            eng.feed(ev)
        eng.end()
        eng.flows()
        eng.chains()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY, peak


def test_the_unmutated_state_loads_and_folds(base):
    _load_and_fold(base, base["data"])
    assert persist.loads(base["data"], base["eng"].templates).event_index > 0


OPS = st.integers(0, 12)


@FUZZ
@given(data=st.data())
def test_mutated_registry_encodings(base, data):
    """Opcodes replaced, inserted or removed; ints, big ints and heap bytes changed."""
    body = engine_state_pb2.EngineState()
    body.CopyFrom(base["body"])
    reg = body.registry
    shape, ints, big, heap = bytearray(reg.shape), list(reg.ints), list(reg.big), bytearray(reg.heap)
    for _ in range(data.draw(st.integers(1, 4))):
        what = data.draw(st.sampled_from(["op", "ins", "del", "int", "big", "heap", "cut"]))
        if what == "op" and shape:
            shape[data.draw(st.integers(0, len(shape) - 1))] = data.draw(OPS)
        elif what == "ins":
            shape.insert(data.draw(st.integers(0, len(shape))), data.draw(OPS))
        elif what == "del" and shape:
            del shape[data.draw(st.integers(0, len(shape) - 1))]
        elif what == "int" and ints:
            ints[data.draw(st.integers(0, len(ints) - 1))] = data.draw(
                st.one_of(st.integers(-3, 40), st.integers(-(1 << 63), (1 << 63) - 1)))
        elif what == "big":
            big.append(data.draw(st.integers(0, (1 << 64) - 1)))
        elif what == "heap" and heap:
            heap[data.draw(st.integers(0, len(heap) - 1))] = data.draw(st.integers(0, 255))
        elif what == "cut":
            n = data.draw(st.integers(0, len(ints)))
            ints = ints[:n]
    reg.shape, reg.heap = bytes(shape), bytes(heap)
    reg.ints[:] = ints
    reg.big[:] = big
    _load_and_fold(base, _signed(base, body.SerializeToString()))


@FUZZ
@given(raw=st.binary(max_size=4096))
def test_arbitrary_bodies(base, raw):
    """Any bytes as the protobuf body, and any bytes as the registry's opcodes."""
    _load_and_fold(base, _signed(base, raw))
    body = engine_state_pb2.EngineState()
    body.CopyFrom(base["body"])
    body.registry.shape = raw
    _load_and_fold(base, _signed(base, body.SerializeToString()))


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.text(max_size=20),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                       max_leaves=12)


@FUZZ
@given(field=st.sampled_from(["model", "templates", "config", "session_id", "event_index",
                              "event_id", "size"]), value=JSONISH)
def test_arbitrary_header_fields(base, field, value):
    body = base["body"].SerializeToString()
    data = _signed(base, body, **{field: value})
    _load_and_fold(base, data)


@FUZZ
@given(raw=st.binary(max_size=512), cut=st.integers(0, 200))
def test_arbitrary_containers(base, raw, cut):
    """Bytes with the magic, a header length, and a valid tag: anything after that."""
    out = persist.MAGIC + raw
    _load_and_fold(base, out + hmac.new(base["key"], out, hashlib.sha256).digest())
    _load_and_fold(base, base["data"][:cut] + raw)


def test_deep_nesting_is_refused_not_recursed(base):
    """Opcodes nesting lists a million deep: the schema has a fixed depth, so the decoder
    refuses at the first place a list does not belong."""
    body = engine_state_pb2.EngineState()
    body.CopyFrom(base["body"])
    body.registry.shape = bytes([state_codec.OBJ]) + bytes([state_codec.LIST]) * 1_000_000
    body.registry.ints[:] = [1] * 1_000_000
    with pytest.raises(persist.StateError):
        persist.loads(_signed(base, body.SerializeToString()), base["eng"].templates)
