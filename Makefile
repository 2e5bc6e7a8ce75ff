# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
# Every target is idempotent: a second run on a ready machine installs nothing.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIO ?= lossy

.PHONY: help host venv demo test test-unit test-root test-faults bench proto proto-check docs clean lint

help:
	@echo "make demo         install what is missing, then run gew-tui live on the '$(SCENARIO)' lab"
	@echo "make test         install what is missing, then run the whole test suite (root, real kernel)"
	@echo "make test-faults  only the fault-injection suite (tests/faults)"
	@echo "make bench        run the benchmarks and refresh docs/PERFORMANCE.md"
	@echo "make proto        regenerate gewtui/pb from proto/"
	@echo "make docs         regenerate docs/commands.md from the command table"

# System packages, kernel headers, tracefs/bpffs mounts (.ci/host-setup says what it did).
host:
	@bash .ci/host-setup

$(STAMP): pyproject.toml gewtui/kernel/ring_native.c gewtui/recording/lifecycle_native.c gewtui/kernel/probes/tcp_state_native.c \
    gewtui/kernel/probes/tcp_events_native.c gewtui/kernel/probes/drops_native.c gewtui/kernel/probes/fields_native.h \
    gewtui/pbwire_native.c gewtui/recording/framing_native.c gewtui/pbwire.h
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -c 'import bcc' 2>/dev/null || { echo "gew: the venv cannot import bcc (python3-bpfcc missing?)"; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: host $(STAMP)

demo: venv
	$(VENV)/bin/gew-tui --lab $(SCENARIO) --allow-intervention

test: venv
	$(PY) -m pytest -q

test-faults: venv
	$(PY) -m pytest -q tests/faults

bench: venv
	$(PY) -m bench

proto: $(STAMP)
	$(PY) proto/gen_proto.py

docs: $(STAMP)
	$(PY) -m gewtui.debugger.reference > docs/commands.md

proto-check: $(STAMP)
	$(PY) proto/gen_proto.py --check

lint: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
