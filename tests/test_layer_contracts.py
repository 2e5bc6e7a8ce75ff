"""The import-linter contracts in pyproject.toml hold: one per floor of docs/ARCHITECTURE.md
(the model, the debugger core and the recording format import neither bcc, the UI libraries,
nor the layers above them; runtime is below the kernel; the kernel knows no intervention; the
debugger reaches interventions through gewtui.debugger.gating only; the two front ends do not
know each other). This checks every import statement, including ones inside functions, which
a sys.modules test cannot see; `make test` runs it with the rest of the suite."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports missing from the venv (import-linter is a test dependency)"
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
    assert "0 broken" in r.stdout


def test_no_test_module_imports_another():
    # What two test modules share lives in tests/support/ (or a *_support module, or a
    # conftest fixture): a test module is read on its own.
    import ast

    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if any(part.startswith("test_") for part in name.split(".")):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []
    assert (ROOT / "tests" / "support" / "__init__.py").is_file()


def test_modules_stay_small_and_the_debugger_core_smaller():
    # A module past 600 lines is usually two; the Debugger keeps ingestion, motions,
    # navigation and selection, its timeline the engines and checkpoints.
    import ast

    long = [f"{p.relative_to(ROOT)}: {n} lines"
            for p in sorted((ROOT / "gewtui").rglob("*.py")) if p.parent.name != "pb"
            for n in [len(p.read_text().splitlines())] if n > 600]
    assert long == []
    core = ROOT / "gewtui" / "debugger" / "core.py"
    cls = next(n for n in ast.parse(core.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "Debugger")
    assert cls.end_lineno - cls.lineno + 1 < 350
