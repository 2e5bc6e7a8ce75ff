"""CLI command module (placeholder until its layer lands): says so and exits non-zero."""
from __future__ import annotations

from gewtui.errors import GewError

EPILOG = ""


def add_arguments(p, words) -> None:
    p.add_argument("rest", nargs="*", help="not available yet")


def run(args) -> int:
    raise GewError(" ".join(getattr(args, "_words", ("gew-tui",))) + ": not available in this build yet")
