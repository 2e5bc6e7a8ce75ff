"""Polling until the kernel, a lab or a session shows what a test waits for."""
from __future__ import annotations

import time


def wait_for(pred, timeout: float, step: float = 0.1):
    """``pred()``'s first truthy value within ``timeout`` seconds, else its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
