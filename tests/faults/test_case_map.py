"""The fault suite's case map (tests/faults/conftest.py, tests/faults/README.md) names only
tests that exist, covers every case of issue 7, and each case has a test named after it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.faults.conftest import CASES

HERE = Path(__file__).resolve().parent


def _tests_in(file: str) -> set[str]:
    tree = ast.parse((HERE / file).read_text())
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")}


def test_every_case_has_a_test_named_after_it_and_every_mapped_test_exists():
    assert sorted(CASES) == list(range(1, 16))
    for case, (_, tests) in CASES.items():
        assert any(t.split("::")[1].startswith(f"test_case{case:02d}_") for t in tests), f"case {case}"
        for t in tests:
            file, name = t.split("::")
            assert name in _tests_in(file), f"case {case}: {t} does not exist"
    named = {n for f in HERE.glob("test_*.py") for n in _tests_in(f.name) if re.match(r"test_case\d\d_", n)}
    mapped = {t.split("::")[1] for _, tests in CASES.values() for t in tests}
    assert named <= mapped, f"named after a case but not in the map: {sorted(named - mapped)}"


def test_readme_table_matches_the_map():
    readme = (HERE / "README.md").read_text()
    for case, (_, tests) in CASES.items():
        row = next((ln for ln in readme.splitlines() if ln.startswith(f"| {case} ")), None)
        assert row is not None, f"README has no row for case {case}"
        for t in tests:
            assert t.split("::")[1] in row, f"README row {case} does not name {t}"
