"""The C record layouts in bpf/*.c and their Python mirrors agree (no kernel): struct sizes
computed from the C declarations with natural alignment, and the record-kind, probe-id
and counter constants."""
import re
from pathlib import Path

import pytest

from gewtui.kernel.probes import UNITS, drops, owner, queue, route, tcp_events, tcp_probe, tcp_state
from gewtui.kernel.probes import base

BPF = Path(__file__).resolve().parent.parent / "bpf"
SCALARS = {"u8": 1, "s8": 1, "char": 1, "u16": 2, "s16": 2, "u32": 4, "s32": 4, "u64": 8, "s64": 8}


def _sources() -> str:
    return "\n".join(p.read_text() for p in sorted(BPF.glob("*.[ch]")))


def _structs(text: str) -> dict[str, list[tuple[str, str, int]]]:
    out = {}
    consts = _defines(text)   # array bounds named by a #define (GEW_LIFE_ITEMS)
    for m in re.finditer(r"struct (gew_\w+) \{(.*?)\};", text, re.S):
        fields = []
        for line in m.group(2).splitlines():
            line = re.sub(r"/\*.*?\*/", "", line).strip()
            f = re.match(r"^(struct \w+|\w+) (\w+)(?:\[(\w+)\])?;$", line)
            if f:
                n = f.group(3) or "1"
                fields.append((f.group(1), f.group(2), consts[n] if n in consts else int(n)))
        out[m.group(1)] = fields
    return out


def _layout(name: str, structs) -> tuple[int, int]:
    """(size, alignment) of struct ``name`` under the C rules for these types."""
    off, align = 0, 1
    for ctype, _field, n in structs[name]:
        if ctype.startswith("struct "):
            size, a = _layout(ctype.split()[1], structs)
        else:
            size = a = SCALARS[ctype]
        off = (off + a - 1) // a * a + size * n
        align = max(align, a)
    return (off + align - 1) // align * align, align


@pytest.fixture(scope="module")
def structs():
    return _structs(_sources())


@pytest.mark.parametrize("cname, pysize", [
    ("gew_hdr", base.HDR.size),
    ("gew_tuple", base.TUPLE.size),
    ("gew_sock", base.SOCK.size),
    ("gew_rec_state", base.HDR.size + tcp_state.STATE.size),
    ("gew_rec_destroy", base.HDR.size + tcp_state.DESTROY.size),
    ("gew_rec_cong", base.HDR.size + tcp_state.CONG.size),
    ("gew_life_item", tcp_state.LIFE_ITEM.size),
    ("gew_life_task", tcp_state.LIFE_TASK.size),
    ("gew_life", tcp_state.LIFE.size),
    ("gew_rec_life", base.HDR.size + tcp_state.REC_LIFE.size),
    ("gew_rec_retrans", base.HDR.size + tcp_events.RETRANS.size),
    ("gew_rec_reset", base.HDR.size + tcp_events.RESET.size),
    ("gew_rec_zw", base.HDR.size + tcp_probe.ZW.size),
    ("gew_rec_owner", base.HDR.size + owner.OWNER.size),
    ("gew_rec_drop", base.HDR.size + drops.DROP.size),
    ("gew_rec_rcvq", base.HDR.size + drops.RCVQ.size),
    ("gew_qstat", queue.QSTAT.size),
    ("gew_rec_qgone", base.HDR.size + queue.GONE.size),
    ("gew_rec_fib", base.HDR.size + route.FIB.size),
    ("gew_rec_neigh", base.HDR.size + route.NEIGH.size),
    ("gew_fib_key", route.FIB_KEY.size),
    ("gew_fib_val", route.FIB_VAL.size),
])
def test_struct_sizes_match(structs, cname, pysize):
    assert _layout(cname, structs)[0] == pysize


def _offset(name: str, member: str, structs) -> int:
    """Offset of ``member`` in struct ``name`` under the same rules."""
    off = 0
    for ctype, field, n in structs[name]:
        if ctype.startswith("struct "):
            size, a = _layout(ctype.split()[1], structs)
        else:
            size = a = SCALARS[ctype]
        off = (off + a - 1) // a * a
        if field == member:
            return off
        off += size * n
    raise KeyError(member)


def test_sock_histogram_where_python_reads_it(structs):
    # the srtt histogram is read on its own (base.HIST at base.SOCK_HIST), not through SOCK
    assert _offset("gew_sock", "srtt_hist", structs) == base.SOCK_HIST
    assert _defines(_sources())["GEW_SRTT_BUCKETS"] == base.SRTT_BUCKETS
    assert dict((f, n) for _, f, n in structs["gew_sock"])["srtt_hist"] * 4 == base.HIST.size


def _defines(text: str) -> dict[str, int]:
    return {k: int(v, 0) for k, v in re.findall(r"#define (GEW_\w+) (\d+|0x[0-9a-fA-F]+)\b", text)}


def test_kinds_probe_ids_and_counters_match():
    d = _defines(_sources())
    assert d["GEW_LIFE_ITEMS"] == tcp_state.LIFE_ITEMS
    assert (d["GEW_LIFE_STATE"], d["GEW_LIFE_OWNER"], d["GEW_LIFE_CONG"]) == (
        tcp_state.LIFE_STATE, tcp_state.LIFE_OWNER, tcp_state.LIFE_CONG)
    py_kinds = {}
    for u in UNITS:
        assert d.get(f"GEW_PROBE_{u.name.upper()}", 0) == u.probe_id or u.name == "irqctx"
        for kind in u.decoders:
            py_kinds[kind] = u.name
    c_kinds = {v: k for k, v in d.items() if k.startswith("GEW_K_")}
    assert set(c_kinds) == set(py_kinds), (c_kinds, py_kinds)
    assert (d["GEW_C_PRODUCED"], d["GEW_C_LOST"], d["GEW_C_MAPFULL"], d["GEW_C_NONETNS"], d["GEW_C_RESCUED"]) == (
        base.C_PRODUCED, base.C_LOST, base.C_MAPFULL, base.C_NONETNS, base.C_RESCUED)
    assert (d["GEW_C_STRIDE"], d["GEW_NPROBES"]) == (base.C_STRIDE, base.NPROBES)
    assert (d["GEW_CTX_PROCESS"], d["GEW_CTX_SOFTIRQ"]) == (base.CTX_PROCESS, base.CTX_SOFTIRQ)
    assert {d["GEW_ATTR_HEADERS"], d["GEW_ATTR_SOCKET"], d["GEW_ATTR_NONE"]} == set(drops.ATTRIBUTION)


def test_every_program_and_offset_named_in_python_exists_in_c():
    text = _sources()
    for u in UNITS:
        src = (BPF / u.source).read_text()
        for p in u.programs:
            arg = "struct bpf_raw_tracepoint_args" if p.raw else f"struct tracepoint__{p.group}__{p.name}"
            assert re.search(rf"int {p.fn}\({arg} \*", src), f"{p.fn} in {u.source}"
            if p.typed_fn:
                assert re.search(rf"int {p.typed_fn}\({arg} \*", src), f"{p.typed_fn} in {u.source}"
        for need in base.CORE_BTF + u.btf:
            assert need.define in text
    used = set(re.findall(r"GEW_OFF_[A-Z0-9_]+", text))
    declared = {n.define for u in UNITS for n in base.CORE_BTF + u.btf}
    assert used <= declared, used - declared
