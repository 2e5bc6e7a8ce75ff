"""``gew config show [--json]``: the effective user configuration (gewtui.config) and where
each value came from: the built-in default or the config file.

Argument parsing and printing only. The keymap is checked against gew-tui's binding ids
and every binding is listed with its effective keys, so this is also the list of ids a
user may remap (it imports the TUI's binding tables, not a running app).
"""
from __future__ import annotations

import argparse
import json
import os

EPILOG = """\
examples:
  gew config show                  every setting, its value, and where it came from
  gew config show --json | jq '.keymap["run.step"]'
  XDG_CONFIG_HOME=/tmp/cfg gew config show   read /tmp/cfg/gew/config.toml instead

a config file (~/.config/gew/config.toml):
  theme = "light"
  [keymap]
  "run.step" = "x"
  [defaults]
  replay_open = "first-match"
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--json", action="store_true", help="one JSON object: value and source of each setting")


def run(args: argparse.Namespace) -> int:
    from gewtui import config
    from gewtui.tui import keymap
    from gewtui.tui.app import all_bindings

    bindings = all_bindings()
    cfg = config.load(b.id for b in bindings if b.id)
    rows: list[tuple[str, str, str]] = [("theme", cfg.theme.value, cfg.theme.source)]
    if os.environ.get("NO_COLOR"):
        rows.append(("colour", "off", "environment (NO_COLOR)"))
    for name, v in cfg.defaults.items():
        rows.append((f"defaults.{name}", v.value, v.source))
    user = cfg.keys()
    seen: set[str] = set()
    for b in keymap.effective(bindings, user):
        if not b.id or b.id in seen:
            continue
        seen.add(b.id)
        src = cfg.keymap[b.id].source if b.id in cfg.keymap else "default"
        # Key names as the config file spells them ("space", not the footer's "spc").
        rows.append((f"keymap.{b.id}", ",".join(k.strip() for k in b.key.split(",")), src))
    if args.json:
        out = {"file": cfg.path, "present": cfg.present,
               "theme": {"value": cfg.theme.value, "source": cfg.theme.source},
               "defaults": {n: {"value": v.value, "source": v.source} for n, v in cfg.defaults.items()},
               "keymap": {name[len("keymap."):]: {"value": val, "source": src}
                          for name, val, src in rows if name.startswith("keymap.")}}
        print(json.dumps(out, indent=2))
        return 0
    print(f"config file: {cfg.path} ({'read' if cfg.present else 'not present: defaults only'})")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for name, val, src in rows:
        print(f"  {name:<{w0}}  {val:<{w1}}  {src}")
    return 0
