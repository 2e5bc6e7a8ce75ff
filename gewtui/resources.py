"""Locates the data shipped beside the code: BPF C sources, themes and templates.

In a source checkout they sit at the top level (``bpf/``, ``themes/``); in an installed
wheel they are under ``gewtui/_data/``. Both are reached through the same links.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def bpf_dir() -> Path:
    return _PKG / "_data" / "bpf"


def themes_dir() -> Path:
    return _PKG / "_data" / "themes"


def templates_dir() -> Path:
    return _PKG / "model" / "templates"


def bpf_source(name: str) -> Path:
    """Path of ``bpf/<name>``; raises FileNotFoundError naming what is missing."""
    p = bpf_dir() / name
    if not p.is_file():
        raise FileNotFoundError(f"BPF source {name} not found under {bpf_dir()}")
    return p
