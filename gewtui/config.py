"""The user's configuration: ``$XDG_CONFIG_HOME/gew/config.toml`` (``~/.config/gew/config.toml``
when XDG_CONFIG_HOME is unset or not absolute).

Place in the pipeline: the CLI reads it once, before a front end starts; the TUI applies
its keymap to the bindings (footer, help and palette then show the user's keys) and its
theme and defaults where the command line left them unset. ``gew config show`` prints the
effective values and where each came from. No Textual, no bcc: the binding ids it checks
against are handed in by the caller.

The file is treated as hostile, as root reads it: opened without following a link and
without blocking (a FIFO), it must be a regular file owned by the reading user or root and
writable by no one else, at most ``MAX_BYTES``; every key is checked against what is known
and every value against its type and bounds. A problem is one line naming the file and the
key, exit 78; a configuration can change keys and looks, never what gew concludes.

    theme = "light"                    # dark | light | high-contrast

    [keymap]                           # binding id = keys, comma-separated (Textual names)
    "run.step" = "x"
    "run.back" = "X,p"

    [defaults]
    replay_open = "end"                # end | first-match | start
    drop_ttl = "5m"
    export_format = "text"             # text | jsonl | table
"""
from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from gewtui.errors import EX_CONFIG, GewError

MAX_BYTES = 64 * 1024
MAX_KEYMAP = 256           # entries
MAX_KEYS = 8               # keys per binding
THEMES = ("dark", "light", "high-contrast")
# A key as Textual names it: "x", "X", "ctrl+s", "f5", "question_mark", "?".
_KEY = re.compile(r"^(?:[a-z0-9_]+(?:\+[a-z0-9_]+)*|[!-~])$", re.I)
_DURATION = re.compile(r"^\d{1,6}(?:ms|s|m|h)?$")


@dataclass(frozen=True)
class Setting:
    name: str
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    default: str = ""
    help: str = ""


DEFAULTS: tuple[Setting, ...] = (
    Setting("replay_open", ("end", "first-match", "start"), default="end",
            help="where a replay opens: the end (every flow and verdict), the first template "
                 "match, or before the first event"),
    Setting("drop_ttl", pattern=_DURATION, default="5m", help="how long a drop lasts"),
    Setting("export_format", ("text", "jsonl", "table"), default="text",
            help="gew export's format when neither --format nor --json is given"),
)
_BY_NAME = {s.name: s for s in DEFAULTS}
TOP_KEYS = ("theme", "keymap", "defaults")


class ConfigError(GewError):
    code = EX_CONFIG


@dataclass(frozen=True)
class Value:
    value: str
    source: str                # "default", the file's path, "command line", "environment"


@dataclass(frozen=True)
class Config:
    path: str
    present: bool
    theme: Value = Value("dark", "default")
    keymap: Mapping[str, Value] = field(default_factory=dict)
    defaults: Mapping[str, Value] = field(default_factory=dict)

    def default(self, name: str) -> str:
        v = self.defaults.get(name)
        return v.value if v is not None else _BY_NAME[name].default

    def keys(self) -> dict[str, str]:
        """binding id -> keys, for ``App.set_keymap``."""
        return {bid: v.value for bid, v in self.keymap.items()}


def config_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        # The XDG spec: a relative value is invalid and ignored.
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "gew", "config.toml")


def _read(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist; ConfigError when it is not a
    plain, private file of this user (or root) within the size cap."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == 40:                        # ELOOP: the name is a symbolic link
            raise ConfigError(f"{path}: is a symbolic link; gew reads only a regular file") from None
        raise ConfigError(f"{path}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if st.st_uid not in (os.geteuid(), 0):
            raise ConfigError(f"{path}: owned by uid {st.st_uid}, not by you or root")
        if st.st_mode & 0o022:
            raise ConfigError(f"{path}: writable by group or others (chmod go-w)")
        if st.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: {st.st_size} bytes, over the {MAX_BYTES}-byte cap")
        data = os.read(fd, MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(f"{path}: over the {MAX_BYTES}-byte cap")
        return data
    finally:
        os.close(fd)


def load(binding_ids: Iterable[str] | None = None, *, path: str | None = None) -> Config:
    """The effective configuration. ``binding_ids``: the ids a keymap may name (None: not
    checked, for callers that show the file without a front end)."""
    path = path or config_path()
    data = _read(path)
    if data is None:
        return Config(path, False, defaults=_defaults({}, path))
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    for key in doc:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(TOP_KEYS)})")
    theme = Value("dark", "default")
    if "theme" in doc:
        t = doc["theme"]
        if t not in THEMES:
            raise ConfigError(f"{path}: theme {t!r} is not one of {', '.join(THEMES)}")
        theme = Value(t, path)
    return Config(path, True, theme, _keymap(doc.get("keymap", {}), path, binding_ids),
                  _defaults(doc.get("defaults", {}), path))


def _keymap(table: Any, path: str, ids: Iterable[str] | None) -> dict[str, Value]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: keymap must be a table of binding id = \"keys\"")
    if len(table) > MAX_KEYMAP:
        raise ConfigError(f"{path}: keymap has {len(table)} entries, over {MAX_KEYMAP}")
    known = set(ids) if ids is not None else None
    out: dict[str, Value] = {}
    for bid, keys in table.items():
        if known is not None and bid not in known:
            raise ConfigError(f"{path}: keymap: no binding {bid!r} (gew config show lists them)")
        if not isinstance(keys, str):
            raise ConfigError(f"{path}: keymap {bid!r}: keys must be a string such as \"x\" or \"x,ctrl+s\"")
        parts = [k.strip() for k in keys.split(",")]
        if not keys.strip() or len(parts) > MAX_KEYS or not all(_KEY.match(k) for k in parts):
            raise ConfigError(f"{path}: keymap {bid!r}: {keys[:40]!r} is not a list of up to "
                              f"{MAX_KEYS} key names")
        out[bid] = Value(",".join(parts), path)
    return out


def _defaults(table: Any, path: str) -> dict[str, Value]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: defaults must be a table")
    out = {s.name: Value(s.default, "default") for s in DEFAULTS}
    for name, value in table.items():
        s = _BY_NAME.get(name)
        if s is None:
            raise ConfigError(f"{path}: defaults: unknown key {name!r} "
                              f"(known: {', '.join(_BY_NAME)})")
        if not isinstance(value, str) or (s.choices and value not in s.choices) or (
                s.pattern is not None and not s.pattern.match(value)):
            want = " | ".join(s.choices) if s.choices else "e.g. 90s, 5m, 1h"
            raise ConfigError(f"{path}: defaults.{name}: {str(value)[:40]!r} is not {want}")
        out[name] = Value(value, path)
    return out
