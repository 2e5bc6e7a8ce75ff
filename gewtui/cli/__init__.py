"""Command-line front ends: ``gew`` (subcommands) and ``gew-tui`` (the full-screen debugger)."""
