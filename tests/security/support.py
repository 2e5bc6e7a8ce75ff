"""What the attack tests share: acting as user `nobody`, and running the real `gew` CLI as
root with its two ownership roots moved to names of the test's own.

The roots are moved (to /sys/fs/bpf/gewt-sec-<hex> and /run/gewt-sec-<hex>) so a test can
let `nobody` create them first, as an attacker would create /sys/fs/bpf/gewyvern, without
disturbing gew sessions that other programs on this machine run under the real roots.
Only ``Instance``'s default roots change; the command line, the session and the cleanup
are the ones a user runs.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass

NOBODY = pwd.getpwnam("nobody").pw_uid
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--"]

# Instance.__init__'s keyword defaults are the roots; everything else is gew's own main.
_LAUNCH = """
import sys
from gewtui.kernel import bpffs
bpffs.Instance.__init__.__kwdefaults__.update(bpffs_root=sys.argv[1], run_root=sys.argv[2])
from gewtui.cli.main import gew_main
sys.exit(gew_main(sys.argv[3:]))
"""


def as_nobody(script: str) -> None:
    """Run a shell script as nobody:nogroup with no supplementary groups; it must succeed."""
    r = subprocess.run(AS_NOBODY + ["sh", "-ec", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"nobody could not plant: {r.stderr.strip()}"


def root_env() -> dict[str, str]:
    """Root's environment without SUDO_UID (whose directories gew would trust)."""
    env = dict(os.environ)
    env.pop("SUDO_UID", None)
    return env


@dataclass
class Roots:
    bpffs: str
    run: str

    def gew(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `gew ARGS` as root with these roots; umask 022, as a login shell has."""
        return subprocess.run([sys.executable, "-c", _LAUNCH, self.bpffs, self.run, *args],
                              capture_output=True, text=True, timeout=timeout, env=root_env(),
                              preexec_fn=lambda: os.umask(0o022))

    def remove(self) -> None:
        """Remove both roots and all below them (a planted link is removed, not followed)."""
        for top in (self.bpffs, self.run):
            if os.path.islink(top):
                os.unlink(top)
            elif os.path.isdir(top):
                shutil.rmtree(top)


def fresh_roots() -> Roots:
    tag = secrets.token_hex(4)
    return Roots(f"/sys/fs/bpf/gewt-sec-{tag}", f"/run/gewt-sec-{tag}")


def one_line(stderr: str) -> str:
    """The single line gew printed on stderr (asserting there is exactly one)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]
