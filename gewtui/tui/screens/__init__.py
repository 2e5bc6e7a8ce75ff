"""gew-tui's screens: the main debugger screen, help, and the drop confirmation."""
