"""The debugger core: a cursor over one session's L0 events (core), checkpoints for time
travel (checkpoints), breakpoints and filters, the one command language of the TUI and the
shell (commands), the immutable views the front ends render (view: the types; view_values:
engine output as those types; view_builder: the DebugView of each tick), the event sources
(sources), the pump thread (runner) and the filtered export (export).

Pure Python over gewtui.pb, gewtui.model and gewtui.recording: no bcc, no UI library."""
