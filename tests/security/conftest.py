"""Fixtures of the attack tests: ``roots``, gew's two ownership roots moved to names of the
test's own (see support.py), removed afterwards with everything planted in them."""
from __future__ import annotations

import pytest

from tests.security.support import fresh_roots


@pytest.fixture
def roots():
    r = fresh_roots()
    try:
        yield r
    finally:
        r.remove()
