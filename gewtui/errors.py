"""User-facing errors: one line, a fixed exit code, never a traceback.

Every layer raises these for conditions a user can cause (bad input, missing privilege or
capability, a gate not satisfied); the CLI prints ``gew: <message>`` and exits with ``code``.
"""
from __future__ import annotations

# sysexits.h values, so scripts can tell the kinds apart.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_NOPERM = 77
EX_CONFIG = 78


class GewError(Exception):
    """An error with a one-line message meant for the operator."""

    code = EX_SOFTWARE

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]).splitlines()[0] if self.args else self.__class__.__name__


class UsageError(GewError):
    code = EX_USAGE


class NotRootError(GewError):
    code = EX_NOPERM


class CapabilityError(GewError):
    """A capability the session needs is not supported, or risky without --allow-risky."""

    code = EX_UNAVAILABLE


class RecordingError(GewError):
    """A recording is corrupt, truncated beyond use, hostile or unreadable."""

    code = EX_DATAERR


class ScopeError(GewError):
    """The scope names something that does not exist, or cannot be observed completely."""

    code = EX_CONFIG


class GateRefused(GewError):
    """An intervention was refused by the safety gate; the message names every failed condition."""

    code = EX_NOPERM


class SessionError(GewError):
    """A session transaction step failed and was rolled back."""

    code = EX_SOFTWARE


def one_line(e: BaseException) -> str:
    """An unexpected exception as one line of a message: its type and its first line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
