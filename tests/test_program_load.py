"""Loading a program when the kernel answers EAGAIN (gewtui.kernel.build.load_retrying): the
verifier gives up that way when a signal is pending, as when a tracer attaches to the
process, and the same load then passes."""
import pytest

from gewtui.kernel.build import LOAD_TRIES, load_retrying

EAGAIN = "Failed to load BPF program b'gew_sock_send': Resource temporarily unavailable"


class Loader:
    def __init__(self, failures: list[str]):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, name, kind):
        self.calls += 1
        if self.failures:
            raise Exception(self.failures.pop(0))
        return (name, kind)


def test_a_load_interrupted_by_a_signal_is_tried_again():
    load = Loader([EAGAIN, EAGAIN])
    assert load_retrying(load, b"gew_sock_send", 17, pause_s=0) == (b"gew_sock_send", 17)
    assert load.calls == 3


def test_a_refusal_of_any_other_kind_is_raised_at_once():
    load = Loader(["Failed to load BPF program b'x': Permission denied"])
    with pytest.raises(Exception, match="Permission denied"):
        load_retrying(load, b"x", 17, pause_s=0)
    assert load.calls == 1


def test_eagain_every_time_is_raised_after_the_last_try():
    load = Loader([EAGAIN] * (LOAD_TRIES + 1))
    with pytest.raises(Exception, match="Resource temporarily unavailable"):
        load_retrying(load, b"x", 17, pause_s=0)
    assert load.calls == LOAD_TRIES
