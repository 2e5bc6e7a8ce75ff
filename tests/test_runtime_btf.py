"""The pure-Python BTF reader: a hand-built blob (no kernel) and the running kernel's
/sys/kernel/btf/vmlinux (readable without root)."""
import os
import struct

import pytest

from gewtui.runtime import btf as B


def _blob(types: list[bytes], strings: bytes) -> bytes:
    tdata = b"".join(types)
    hdr = struct.pack("<HBBIIIII", B.BTF_MAGIC, 1, 0, 24, 0, len(tdata), len(tdata), len(strings))
    return hdr + tdata + strings


def test_members_through_anonymous_unions_and_typedefs():
    # strings: 0 "", 1 "int", 5 "outer", 11 "a", 13 "b", 15 "inner_t", 23 "c"
    strings = b"\0int\0outer\0a\0b\0inner_t\0c\0"
    INT = struct.pack("<III", 1, B.INT << 24, 4) + struct.pack("<I", 32)          # id 1: int
    # id 2: anonymous union { int b; int c; }
    UNION = struct.pack("<III", 0, (B.UNION << 24) | 2, 4) + struct.pack("<III", 13, 1, 0) + struct.pack("<III", 23, 1, 0)
    TYPEDEF = struct.pack("<III", 15, B.TYPEDEF << 24, 2)                          # id 3: inner_t
    # id 4: struct outer { int a; inner_t <anon>; } with the anonymous member at byte 8
    STRUCT = struct.pack("<III", 5, (B.STRUCT << 24) | 2, 12) + struct.pack("<III", 11, 1, 0) + struct.pack("<III", 0, 3, 64)
    b = B.BTF(_blob([INT, UNION, TYPEDEF, STRUCT], strings))
    assert b.member("outer", "a").offset == 0
    r = b.member("outer", "c")
    assert (r.offset, r.size) == (8, 4)
    with pytest.raises(B.BTFError, match="no member"):
        b.member("outer", "d")
    with pytest.raises(B.BTFError, match="no struct"):
        b.member("missing", "a")


def test_malformed_blobs_are_refused():
    with pytest.raises(B.BTFError):
        B.BTF(b"\0" * 8)
    with pytest.raises(B.BTFError, match="magic"):
        B.BTF(struct.pack("<HBBIIIII", 0x1234, 1, 0, 24, 0, 0, 0, 0))
    with pytest.raises(B.BTFError, match="exceed"):
        B.BTF(struct.pack("<HBBIIIII", B.BTF_MAGIC, 1, 0, 24, 0, 100, 0, 0))


@pytest.mark.skipif(not os.path.exists(B.VMLINUX), reason="kernel BTF missing: /sys/kernel/btf/vmlinux")
def test_running_kernel_offsets_and_raw_tracepoint_prototypes():
    b = B.load_vmlinux()
    net = b.member("sock", "__sk_common.skc_net.net")
    assert net.size == 8
    # sock_common starts struct sock, and skc_net sits inside its first cache lines
    assert 0 < net.offset < 128
    assert b.member("sk_buff", "network_header").size == 2
    assert b.raw_tracepoint_args("kfree_skb")[0] == "struct sk_buff *"
    assert b.raw_tracepoint_args("fib6_table_lookup")[0] == "const struct net *"
    ca = b.enum("tcp_ca_state")
    assert ca["TCP_CA_Open"] == 0 and "TCP_CA_Loss" in ca


def test_data_section_variables():
    # strings: 0 "", 1 "int", 5 "a", 7 "b", 9 ".data..percpu"
    strings = b"\0int\0a\0b\0.data..percpu\0"
    INT = struct.pack("<III", 1, B.INT << 24, 4) + struct.pack("<I", 32)           # id 1
    VAR_A = struct.pack("<III", 5, B.VAR << 24, 1) + struct.pack("<I", 1)           # id 2: a (global)
    VAR_B = struct.pack("<III", 7, B.VAR << 24, 1) + struct.pack("<I", 1)           # id 3: b
    # id 4: .data..percpu with b at 16 and a at 4096 (listed out of order)
    SEC = (struct.pack("<III", 9, (B.DATASEC << 24) | 2, 8192)
           + struct.pack("<III", 3, 16, 4) + struct.pack("<III", 2, 4096, 4))
    b = B.BTF(_blob([INT, VAR_A, VAR_B, SEC], strings))
    assert b.section_var(".data..percpu", "a") == (4096, 4)
    assert b.section_var(".data..percpu", "b") == (16, 4)
    with pytest.raises(B.BTFError, match="no variable c"):
        b.section_var(".data..percpu", "c")
    with pytest.raises(B.BTFError, match="no variable a in .data"):
        b.section_var(".data", "a")


@pytest.mark.skipif(not os.path.exists(B.VMLINUX), reason="kernel BTF missing: /sys/kernel/btf/vmlinux")
def test_running_kernel_per_cpu_variables():
    b = B.load_vmlinux()
    rq_off, rq_size = b.section_var(".data..percpu", "runqueues")
    assert rq_size == b.size_of(b.find(B.STRUCT, "rq"))
    assert rq_off > 0
