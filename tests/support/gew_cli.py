"""The gew command as a user runs it (the venv's entry point, in a subprocess), and the
golden recordings of tests/data/golden."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEW = str(ROOT / ".venv" / "bin" / "gew")
GOLDEN = ROOT / "tests" / "data" / "golden"
LOSSY = GOLDEN / "lossy.gewrec"           # 10.77.1.1 -> 10.77.1.2:8080


def gew(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([GEW, *args], capture_output=True, text=True, timeout=120, **kw)
