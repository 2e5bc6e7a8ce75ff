"""Fault-injection and hostile-input tests (issue 7); `make test-faults` runs them alone."""
