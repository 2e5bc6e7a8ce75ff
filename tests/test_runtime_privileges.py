"""Root-only commands refuse an unprivileged user with one line and exit code 77."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gewtui.errors import NotRootError
from gewtui.runtime import privileges

ROOT = Path(__file__).resolve().parent.parent
GEW = str(ROOT / ".venv" / "bin" / "gew")


def _as_nobody(*argv: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.skip("needs root: drops privileges to nobody with setpriv")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv missing (util-linux)")
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "LANG": "C.UTF-8"})


@pytest.mark.root
@pytest.mark.parametrize("argv", [("probe", "list"), ("probe", "list", "--json")])
def test_kernel_touching_command_refuses_nobody(argv):
    r = _as_nobody(GEW, *argv)
    assert r.returncode == 77, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gew: probe list needs root"), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_capability_mask_parsing(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")
    mask = privileges.effective_caps(str(status))
    assert privileges.has_cap(privileges.CAP_BPF, mask)
    assert privileges.has_cap(privileges.CAP_SYS_ADMIN, mask)
    assert privileges.missing_caps(mask) == []
    # only CAP_NET_ADMIN: tracing programs cannot be loaded
    assert privileges.missing_caps(1 << privileges.CAP_NET_ADMIN) == ["CAP_BPF", "CAP_PERFMON"]
    status.write_text("Name:\tx\n")
    assert privileges.effective_caps(str(status)) == 0


def test_require_root_raises_not_root_with_exit_77(monkeypatch):
    monkeypatch.setattr(privileges.os, "geteuid", lambda: 1000)
    with pytest.raises(NotRootError) as e:
        privileges.require_root("session apply")
    assert e.value.code == 77
    assert e.value.message.startswith("session apply needs root")
