"""Themes as data: ``themes/<name>.tcss`` files of ``$variable: value;`` lines become a
Textual theme (for Textual's own widgets and every ``$variable`` in gew-tui's CSS) and a
rich theme (for the renderables shared with the shell, whose styles are named
``gew.ok``, ``gew.L3`` ...).

Place in the pipeline: the app factory loads the theme chosen with ``--theme`` before the
first frame. Widget CSS uses variables only; no colour is written anywhere else.
"""
from __future__ import annotations

import re
from pathlib import Path

from rich.theme import Theme as RichTheme
from textual.theme import Theme

from gewtui.errors import UsageError
from gewtui.resources import themes_dir

NAMES = ("dark", "light", "high-contrast")
_BASE = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
         "background", "surface", "panel", "boost")
_DECL = re.compile(r"^\s*\$([a-z0-9-]+)\s*:\s*([^;]+);", re.M)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)

# rich style name -> (modifier, theme variable) for the renderables of gewtui.present.renderables
_RICH = {
    "gew.error": ("bold", "gew-bad"), "gew.warn": ("", "gew-warn"), "gew.ok": ("", "gew-ok"),
    "gew.bad": ("", "gew-bad"), "gew.dim": ("", "gew-dim"), "gew.id": ("", "gew-id"),
    "gew.head": ("bold", ""), "gew.gap": ("bold", "gew-gap"), "gew.L3": ("bold", "gew-l3"),
    "gew.L2": ("", "gew-l2"), "gew.L1": ("", "gew-l1"), "gew.L0": ("", "gew-l0"),
    "gew.stop": ("bold", ""), "gew.critical": ("bold", "gew-bad"), "gew.warning": ("", "gew-warn"),
    "gew.info": ("", "gew-id"), "gew.hit": ("bold", "gew-hit"),
    "gew.running": ("bold", "gew-running"), "gew.paused": ("bold", "gew-paused"),
}


def theme_path(name: str) -> Path:
    if name not in NAMES:
        raise UsageError(f"unknown theme {name!r} (one of: {', '.join(NAMES)})")
    return themes_dir() / f"{name}.tcss"


def parse(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in _DECL.findall(_COMMENT.sub("", text))}


def load(name: str) -> tuple[Theme, RichTheme]:
    path = theme_path(name)
    try:
        decl = parse(path.read_text())
    except OSError as e:
        raise UsageError(f"theme {name}: cannot read {path}: {e.strerror}") from None
    if "primary" not in decl:
        raise UsageError(f"theme {name}: {path} sets no $primary")
    base = {k: decl[k] for k in _BASE if k in decl}
    custom = {k: v for k, v in decl.items() if k.startswith("gew-")}
    theme = Theme(name=f"gew-{name}", dark=decl.get("dark", "true") == "true",
                  variables=custom, **base)
    rich = RichTheme({style: " ".join(p for p in (mod, custom.get(var, "")) if p) or "none"
                      for style, (mod, var) in _RICH.items()})
    return theme, rich
