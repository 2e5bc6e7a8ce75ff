"""gew-tui: a debugger for the Linux network stack.

Pipeline (dependencies point one way): kernel plane (``gewtui.kernel``, bcc) → L0 events
(``gewtui.pb``) → recording (``gewtui.recording``) → flows and reasons (``gewtui.model``) →
debugger core (``gewtui.debugger``) → front ends (``gewtui.tui``, ``gewtui.shell``, ``gewtui.cli``).
"""

__version__ = "0.1.0"
