"""gew-tui's widgets: each renders one part of an immutable DebugView and posts messages
for what the operator asks; none of them touches the debugger."""
