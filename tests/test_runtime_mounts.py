"""tracefs/bpffs detection from a mounts table (no root, no mounting)."""
from gewtui.runtime import mounts


def test_mount_detection(tmp_path):
    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\n"
                     "tracefs /sys/kernel/tracing tracefs rw,relatime 0 0\n"
                     "bpf /sys/fs/bpf bpf rw,relatime 0 0\n")
    m = mounts.mounted_types(str(table))
    assert mounts.tracefs_mounted(m) == "/sys/kernel/tracing"
    assert mounts.bpffs_mounted(m) == "/sys/fs/bpf"
    table.write_text("debugfs /sys/kernel/debug debugfs rw 0 0\n"
                     "tracefs /sys/kernel/debug/tracing tracefs rw 0 0\n"
                     "tmpfs /sys/fs/bpf tmpfs rw 0 0\n")
    m = mounts.mounted_types(str(table))
    assert mounts.tracefs_mounted(m) == "/sys/kernel/debug/tracing"
    assert mounts.bpffs_mounted(m) is None    # something else mounted there is not bpffs
    assert mounts.mounted_types(str(tmp_path / "missing")) == {}


def test_this_machine_reports_consistently():
    m = mounts.mounted_types()
    t = mounts.tracefs_mounted(m)
    assert t is None or m[t] == "tracefs"
