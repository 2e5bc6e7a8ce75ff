"""Every name the package's code uses is defined: a misspelt or dropped name in a path the
other tests do not reach (an error branch, a rarely taken fallback) would raise NameError
there instead of doing its job. pyflakes reads every module of gewtui/ without running it."""
import pathlib

from pyflakes import checker, messages   # the test extras (make venv) install it

ROOT = pathlib.Path(__file__).resolve().parent.parent / "gewtui"
WRONG = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


def test_no_module_uses_a_name_it_never_defines():
    import ast

    found = []
    modules = sorted(p for p in ROOT.rglob("*.py") if "/pb/" not in p.as_posix())
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for m in checker.Checker(tree, filename=str(path)).messages:
            if isinstance(m, WRONG):
                found.append(f"{path.relative_to(ROOT.parent)}:{m.lineno}: {m.message % m.message_args}")
    assert len(modules) > 100
    assert not found, "\n".join(found)
