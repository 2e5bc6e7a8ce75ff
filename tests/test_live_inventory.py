"""A session's start-of-session inventory never stops the session: when reading it fails,
the failure is logged in one line and the session observes without it."""
from types import SimpleNamespace

from gewtui.kernel import inventory, live


def test_an_inventory_that_cannot_be_read_is_logged_in_one_line_and_left_out(monkeypatch):
    def fail(self):
        raise OSError("cannot read /proc/net/snmp\nsecond line")

    monkeypatch.setattr(inventory.Inventory, "read", fail)
    said: list[str] = []
    scope = SimpleNamespace(netns={}, filter=SimpleNamespace(prefixes=[], ports=[]))
    assert live._inventory(scope, said.append) is None
    assert said == ["inventory: OSError: cannot read /proc/net/snmp"]
