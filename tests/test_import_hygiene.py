"""The observation plane, the recording layer and the debugger core never import the kernel
or UI stacks: checked in a fresh interpreter, so nothing imported by other tests hides it."""
from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("bcc", "textual", "rich", "prompt_toolkit", "pyroute2")
PURE = ("gewtui.model", "gewtui.recording", "gewtui.debugger")


def _modules() -> list[str]:
    import gewtui.model
    mods = ["gewtui.model.engine"]
    mods += [f"gewtui.model.{m.name}" for m in pkgutil.iter_modules(gewtui.model.__path__)]
    for pkg in PURE[1:]:
        if importlib.util.find_spec(pkg) is not None:
            mods.append(pkg)
            spec = importlib.util.find_spec(pkg)
            mods += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(spec.submodule_search_locations)]
    return sorted(set(mods))


def test_pure_layers_import_no_kernel_or_ui_stack():
    mods = _modules()
    code = (
        "import importlib, json, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [], f"imported by {mods}"
    assert "gewtui.model.engine" in mods and len(mods) > 5


def test_model_sources_name_no_forbidden_import():
    # Belt and braces for lazy imports inside functions, which the fresh import cannot see.
    for p in (ROOT / "gewtui" / "model").glob("*.py"):
        for line in p.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import ", "from ")):
                root = s.split()[1].split(".")[0]
                assert root not in FORBIDDEN, f"{p.name}: {s}"
