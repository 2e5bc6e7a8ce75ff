"""The network-namespace lab: scenarios that each produce one behaviour on cue, for demos,
integration tests and benchmarks.

    from gewtui.lab import Lab
    with Lab("refused") as lab:          # up on enter, down on exit (exceptions included)
        lab.client_netns, lab.server_netns, lab.scope_args, lab.status("client")

Namespaces are named gewlab-*; addresses exist only inside them. Everything created is
recorded in /run/gewyvern/lab/state.json first, so `gew lab down` also works after a crash.
"""
from gewtui.lab.lab import LAB_DIR, STATE, Lab, LabError, down, down_all, read_state
from gewtui.lab.scenarios import SCENARIOS, Scenario

__all__ = ["LAB_DIR", "Lab", "LabError", "SCENARIOS", "STATE", "Scenario", "down", "down_all", "read_state"]
