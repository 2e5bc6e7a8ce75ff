"""Attack 5: a hostile ``--templates`` directory.

Each directory below is handed to a real `gew shell` over a small recording (stdin is not
a terminal, so the shell runs no command and exits). Before the fix a FIFO hung the load,
a link to /dev/zero read without end, deep nesting raised a traceback, a huge file was
read whole, an id could hold a newline, and a user file silently replaced a packaged
template. Now each is refused at once with one line (exit 78), and a replacement needs
--override-template and is then shown by `gew runtime info`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gewtui.recording.sample import write_sample
from gewtui.resources import templates_dir

GEW = [sys.executable, "-m", "gewtui.cli.main"]
PACKAGED = Path(templates_dir())


@pytest.fixture
def rec(tmp_path) -> str:
    p = tmp_path / "small.gewrec"
    write_sample(p, 50)
    return str(p)


def _gew(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(GEW + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def _refused(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 78, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _shell(rec: str, d: Path, *extra: str) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    try:
        r = _gew("shell", rec, "--templates", str(d), *extra)
    except subprocess.TimeoutExpired:
        pytest.fail("the template load did not return within 20 s")
    assert time.monotonic() - t0 < 20
    return r


def test_a_fifo_is_refused_without_blocking(rec, tmp_path):
    os.mkfifo(tmp_path / "hang.toml")
    _refused(_shell(rec, tmp_path), "hang.toml", "not a regular file (a FIFO)")


def test_a_link_to_dev_zero_is_refused(rec, tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.toml")
    _refused(_shell(rec, tmp_path), "zero.toml", "not a regular file (a device)")


def test_deep_nesting_is_one_line(rec, tmp_path):
    (tmp_path / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    _refused(_shell(rec, tmp_path), "deep.toml")


def test_deep_tables_are_one_line(rec, tmp_path):
    (tmp_path / "tables.toml").write_text("x = " + "{a = " * 200 + "1" + "}" * 200 + "\n")
    _refused(_shell(rec, tmp_path), "tables.toml", "nested deeper than")


def test_a_huge_file_is_not_read(rec, tmp_path):
    with open(tmp_path / "huge.toml", "wb") as f:
        f.truncate(512 << 20)          # sparse: costs no disk, would cost 512 MiB read whole
    _refused(_shell(rec, tmp_path), "huge.toml", "over the 65,536-byte limit")


def test_an_id_with_a_newline_is_refused(rec, tmp_path):
    good = (PACKAGED / "peer-reset.toml").read_text()
    body = good.replace('id = "peer-reset"', 'id = "forged-\\nline"')
    (tmp_path / "forged-\nline.toml").write_text(body)
    _refused(_shell(rec, tmp_path), "id: must be one line without control characters")


@pytest.mark.parametrize("body", ["id = 3\n", "pattern = 5\n", "[pattern]\nstep = 7\n",
                                  "\xff\xfe garbage", "id = \"x\"\n[[pattern.step]]\nwhere = []\n"])
def test_malformed_values_are_one_line(rec, tmp_path, body):
    (tmp_path / "odd.toml").write_bytes(body.encode("latin-1"))
    _refused(_shell(rec, tmp_path), "odd.toml")


def test_replacing_a_packaged_template_needs_an_option_and_is_shown(rec, tmp_path):
    good = (PACKAGED / "peer-reset.toml").read_text()
    (tmp_path / "peer-reset.toml").write_text(good.replace("title = ", 'title = "tuned" #'))
    _refused(_shell(rec, tmp_path), "peer-reset", "needs --override-template peer-reset")
    r = _shell(rec, tmp_path, "--override-template", "peer-reset")
    assert r.returncode == 0, r.stderr
    assert f"template peer-reset replaced by {tmp_path}/peer-reset.toml" in r.stderr
    info = _gew("runtime", "info", "--templates", str(tmp_path), "--override-template", "peer-reset")
    assert info.returncode == 0, info.stderr
    assert f"replaced   template peer-reset replaced by {tmp_path}/peer-reset.toml" in info.stdout
