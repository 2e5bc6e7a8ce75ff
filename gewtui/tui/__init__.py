"""``gew-tui``: the Textual front end. The app (app) is built by a factory over a running
debugger pump; screens/ and widgets/ render immutable DebugView snapshots only."""
