"""Addresses read the same in every front end and in exports: one formatter
(gewtui.addresses) under the view's columns, the export's tuples and the events' summaries."""
from __future__ import annotations

import socket

from gewtui import addresses
from gewtui.debugger import names, view_values
from gewtui.pb import events_pb2
from gewtui.recording import export

V4 = socket.inet_pton(socket.AF_INET, "10.0.0.1")
V6 = socket.inet_pton(socket.AF_INET6, "fd00::1")


def test_address_text_by_length():
    assert addresses.addr_text(V4) == "10.0.0.1"
    assert addresses.addr_text(V6) == "fd00::1"
    assert addresses.addr_text(b"") == ""
    assert addresses.addr_text(b"\x01\x02\x03") == "010203"


def test_views_and_exports_write_endpoints_alike():
    t = events_pb2.Tuple(family=socket.AF_INET6, saddr=V6, daddr=V4, sport=40000, dport=80)
    assert export.tuple_text(t) == "[fd00::1]:40000>10.0.0.1:80"
    assert view_values.tuple_text(t) == "[fd00::1]:40000 → 10.0.0.1:80"
    assert names.endpoint_text(V6, 0) == "fd00::1"          # no port: nothing to bracket against
    # what an absent address reads as is each caller's: a view's column, an export's tuple
    assert names.addr_text(b"") == "-"
    assert export.tuple_text(events_pb2.Tuple(saddr=V4, sport=1)) == "10.0.0.1:1>?"
