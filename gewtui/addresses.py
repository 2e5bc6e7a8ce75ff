"""Addresses as text, one way for every layer: the recording's export, the debugger's views
(the shell and the TUI show those) and, through them, every front end.

Place in the pipeline: a leaf like gewtui.errors (the standard library only), so the model,
the recording format and the debugger can all use it. Each caller picks what an absent
address reads as ("-" in a view's column, "?" in an export's tuple); the address itself,
the brackets around an IPv6 address beside a port, and the port are written here once.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=4096)
def addr_text(raw: bytes) -> str:
    """4 or 16 raw bytes as an IP address; empty for none; hex for anything else."""
    if len(raw) in (4, 16):
        return str(ipaddress.ip_address(raw))
    return raw.hex()


def host_text(addr: str) -> str:
    """An address as text beside a port or another address: IPv6 bracketed ([fd00::1])."""
    return f"[{addr}]" if ":" in addr else addr


def endpoint_text(addr: str, port: int) -> str:
    """``10.0.0.1:80``, ``[fd00::1]:80``; without a port, the host alone."""
    return f"{host_text(addr)}:{port}" if port else host_text(addr)
