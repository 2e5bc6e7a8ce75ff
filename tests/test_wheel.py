"""The built wheel carries everything the package reads at run time: the BPF C sources, the
themes, the templates and the protobuf stubs (top-level bpf/ and themes/ reach the package
through gewtui/_data links; a wheel must hold copies, not links), and the compiled
extensions."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("gew_tui-*.whl")
    site = out / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
    return site


def test_wheel_holds_the_data_files(unpacked_wheel):
    names = {p.relative_to(unpacked_wheel).as_posix() for p in unpacked_wheel.rglob("*") if p.is_file()}
    for src in (ROOT / "bpf").glob("*.[ch]"):
        assert f"gewtui/_data/bpf/{src.name}" in names
    for theme in (ROOT / "themes").glob("*.tcss"):
        assert f"gewtui/_data/themes/{theme.name}" in names
    assert any(n.startswith("gewtui/model/templates/") and n.endswith(".toml") for n in names)
    assert "gewtui/pb/events_pb2.pyi" in names
    for ext in ("gewtui/recording/lifecycle_native", "gewtui/recording/framing_native", "gewtui/pbwire_native",
                "gewtui/kernel/probes/tcp_state_native", "gewtui/kernel/ring_native",
                "gewtui/kernel/probes/tcp_events_native", "gewtui/kernel/probes/drops_native"):
        assert any(n.startswith(ext + ".") and n.endswith(".so") for n in names), ext


def test_installed_package_finds_its_data(unpacked_wheel):
    code = (
        "import gewtui, gewtui.resources as r\n"
        "from gewtui.model.templates import load_templates\n"
        "assert gewtui.__file__.startswith(%r), gewtui.__file__\n"
        "assert r.bpf_source('tcp_state.c').read_text().strip()\n"
        "assert (r.themes_dir() / 'dark.tcss').is_file()\n"
        "from gewtui.recording import lifecycle, lifecycle_native as m\n"
        "assert lifecycle.NATIVE and m.__file__.startswith(%r), m.__file__\n"
        "import gewtui.kernel.probes.tcp_state_native as n, gewtui.pbwire_native as w\n"
        "assert n.__file__.startswith(%r) and w.__file__.startswith(%r), (n.__file__, w.__file__)\n"
        "import gewtui.kernel.ring_native as g\n"
        "assert g.__file__.startswith(%r), g.__file__\n"
        "print(len(load_templates([])))\n" % ((str(unpacked_wheel),) * 5)
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=unpacked_wheel, env={"PYTHONPATH": str(unpacked_wheel), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.strip()) >= 11
