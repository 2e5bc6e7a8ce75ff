"""Drop sites named through /proc/kallsyms: function+offset, modules named, bounded and
hostile-safe reading; on this machine's kernel, a known text symbol resolves to itself."""
from __future__ import annotations

import os

import pytest

from gewtui.kernel.kallsyms import Kallsyms
from gewtui.pb import events_pb2 as E


def _write(tmp_path, text: str) -> str:
    p = tmp_path / "kallsyms"
    p.write_text(text)
    return str(p)


def test_function_and_offset_from_a_table(tmp_path):
    k = Kallsyms(_write(tmp_path, "ffffffff81000000 T _stext\nffffffff81000100 t helper\n"
                                  "ffffffff81000200 D some_data\nffffffffc0000000 t nft_do_chain\t[nf_tables]\n"))
    assert k.resolve(0xFFFFFFFF81000104) == "helper+0x4"
    assert k.resolve(0xFFFFFFFF81000100) == "helper+0x0"
    assert k.resolve(0xFFFFFFFF81000250) == "helper+0x150"        # data symbols are not functions
    assert k.resolve(0xFFFFFFFFC0000010) == "nft_do_chain+0x10 [nf_tables]"
    assert k.resolve(0x1000) == "" and k.resolve(0) == ""


def test_hidden_addresses_name_nothing_and_say_why(tmp_path):
    k = Kallsyms(_write(tmp_path, "0000000000000000 T _stext\n0000000000000000 t helper\n"))
    assert k.resolve(0xFFFFFFFF81000104) == ""
    assert "kptr_restrict" in k.error


def test_a_symlink_is_not_followed(tmp_path):
    real = _write(tmp_path, "ffffffff81000000 T _stext\n")
    link = tmp_path / "link"
    os.symlink(real, link)
    k = Kallsyms(str(link))
    assert k.resolve(0xFFFFFFFF81000001) == "" and k.error


def test_annotate_fills_the_drop_event(tmp_path):
    k = Kallsyms(_write(tmp_path, "ffffffff81000000 T nf_hook_slow\n"))
    ev = E.Event(id=1)
    ev.skb_drop.location = 0xFFFFFFFF8100003A
    k.annotate(ev)
    assert ev.skb_drop.location_symbol == "nf_hook_slow+0x3a"


@pytest.mark.root
def test_this_kernels_symbols_resolve():
    rows = {}
    with open("/proc/kallsyms") as f:
        for line in f:
            a, t, name = line.split()[:3]
            if t in "tT" and name in ("tcp_v4_rcv", "nf_hook_slow"):
                rows[name] = int(a, 16)
    if not rows or not all(rows.values()):
        pytest.skip("kallsyms hides addresses here (kptr_restrict)")
    k = Kallsyms()
    for name, a in rows.items():
        assert k.resolve(a + 3) == f"{name}+0x3"
