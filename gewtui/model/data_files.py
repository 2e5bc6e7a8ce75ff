"""Data files the observation plane reads as hostile input: templates (gewtui.model.templates)
and cause rules (gewtui.model.causes) are TOML read the same way, bounded in size and depth,
with texts whose placeholders are checked before anything is filled.

Place in the pipeline: loading only, before the first event; one line naming the file and
the key on any error (``TemplateError``, exit code EX_CONFIG).
"""
from __future__ import annotations

import string
import tomllib
from pathlib import Path

from gewtui.errors import EX_CONFIG, GewError

MAX_TEMPLATE_BYTES = 64 * 1024
MAX_NESTING = 16            # tables/arrays inside a template; the real ones use 3


class TemplateError(GewError):
    """A template file is invalid; the message names the file and the key."""

    code = EX_CONFIG


def placeholder_names(text: str, where: str, error: type[TemplateError] = TemplateError) -> list[str]:
    """The placeholders of a data file's text; ``error`` on a malformed one or a format spec."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise error(f"{where}: {e}") from None
    out = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if spec or conv:
            raise error(f"{where}: placeholder {{{name}}} may not carry a format or conversion")
        out.append(name)
    return out


def _depth(v: object, limit: int, d: int = 0) -> int:
    if d > limit:
        return d
    if isinstance(v, dict):
        return max((_depth(x, limit, d + 1) for x in v.values()), default=d)
    if isinstance(v, list):
        return max((_depth(x, limit, d + 1) for x in v), default=d)
    return d


def read_toml(path: Path, error: type[TemplateError] = TemplateError) -> dict:
    """A data file's table (a template or a cause rule), read as hostile input: a regular
    file only (never a FIFO or a link to a device), at most MAX_TEMPLATE_BYTES, nested at
    most MAX_NESTING deep; otherwise ``error``, one line naming the file."""
    from gewtui.securefs import InputRefused, read_input, show

    where = show(str(path))
    try:
        raw = read_input(str(path), MAX_TEMPLATE_BYTES)
    except InputRefused as e:
        raise error(e.message) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{where}: not UTF-8 (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{where}: not valid TOML: {e}") from None
    except RecursionError:
        raise error(f"{where}: nested deeper than {MAX_NESTING} levels") from None
    if _depth(data, MAX_NESTING) > MAX_NESTING:
        raise error(f"{where}: nested deeper than {MAX_NESTING} levels")
    return data
