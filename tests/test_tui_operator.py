"""The operator's side of gew-tui: a keymap file the footer, help and palette obey; a replay
that opens on its story (at the end with its flows, or at the first template match); the
cursor's history one key away; and ``gew config show`` over a hostile config file."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from gewtui import config
from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import ReplaySource
from gewtui.tui.app import FixedClock, build_app
from gewtui.tui.app import binding_ids
from gewtui.tui.widgets.flow_tree import FlowTree
from tests.support import debugger_support
from tests.support.gew_cli import GEW
from tests.support.tui_driver import SIZE, sync, text_of

scenario, recording = debugger_support.scenario, debugger_support.recording


def make_app(path, **kw):
    return build_app(Debugger(ReplaySource(path)), clock=FixedClock(), cursor_blink=False, **kw)


async def opened(app, timeout: float = 20.0):
    """Settle until the opener has sent everything and the pump ran it."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await app.settle()
        if app.opener.done and v.cursor.state == "paused":
            v = await app.settle()
            return v
        assert asyncio.get_running_loop().time() < deadline, "the replay never opened"
        await asyncio.sleep(0.02)


def write_config(tmp_path, text: str) -> str:
    d = tmp_path / "cfg" / "gew"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "config.toml"
    p.write_text(text)
    os.chmod(p, 0o600)
    return str(p)


# ---- keymap ---------------------------------------------------------------------------------

@sync
async def test_a_keymap_file_remaps_step_in_the_keys_footer_help_and_palette(recording, tmp_path):
    path = write_config(tmp_path, '[keymap]\n"run.step" = "x"\n')
    cfg = config.load(binding_ids(), path=path)
    assert cfg.keys() == {"run.step": "x"}
    app = make_app(recording, keymap=cfg.keys())
    async with app.run_test(size=SIZE) as pilot:
        v = await app.settle()
        assert v.cursor.position == 0
        footer: dict = {}
        for _ in range(100):   # the footer recomposes on its own tick once the keymap is set
            footer = {k.description: k.key_display or k.key for k in app.screen.query("FooterKey")}
            if "Step" in footer:
                break
            await pilot.pause(0.02)
        assert footer["Step"] == "x"
        await pilot.press("n")                # the old key no longer steps
        v = await app.settle()
        assert v.cursor.position == 0
        await pilot.press("x", "x")
        v = await app.settle()
        assert v.cursor.position == 2
        await pilot.press("question_mark")
        await pilot.pause()
        help_lines = text_of(app.screen.query_one("Static")).splitlines()
        step = next(ln for ln in help_lines if "run.step" in ln)
        assert step.split()[0] == "x" and "Step" in step
        await pilot.press("escape")
        from gewtui.tui.palette import DebuggerCommands

        entries = {title: help_ for title, _, help_ in DebuggerCommands(app.screen)._entries()}
        assert entries["run: step"].startswith("key x · step")


def test_keymap_ids_must_exist_and_keys_must_be_key_names(tmp_path):
    bad_id = write_config(tmp_path, '[keymap]\n"run.stpe" = "x"\n')
    with pytest.raises(config.ConfigError, match="no binding 'run.stpe'"):
        config.load(binding_ids(), path=bad_id)
    bad_key = write_config(tmp_path, '[keymap]\n"run.step" = "x y"\n')
    with pytest.raises(config.ConfigError, match="is not a list of up to"):
        config.load(binding_ids(), path=bad_key)


# ---- gew config show --------------------------------------------------------------------------

def config_show(tmp_path, *args):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    env.pop("NO_COLOR", None)
    return subprocess.run([GEW, "config", "show", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_config_show_names_the_source_of_every_value(tmp_path):
    path = write_config(tmp_path, 'theme = "light"\n[keymap]\n"run.step" = "x"\n'
                                  '[defaults]\nreplay_open = "first-match"\n')
    r = config_show(tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln.split()[1:] for ln in r.stdout.splitlines()[1:]}
    assert lines["theme"] == ["light", path]
    assert lines["keymap.run.step"] == ["x", path]
    assert lines["keymap.run.back"] == ["N,p", "default"]
    assert lines["keymap.run.toggle"] == ["space", "default"]
    assert lines["defaults.replay_open"] == ["first-match", path]
    assert lines["defaults.drop_ttl"] == ["5m", "default"]
    js = json.loads(config_show(tmp_path, "--json").stdout)
    assert js["file"] == path and js["present"] is True
    assert js["keymap"]["run.step"] == {"value": "x", "source": path}
    assert js["keymap"]["run.toggle"]["source"] == "default"


def test_config_show_without_a_file_shows_the_defaults(tmp_path):
    r = config_show(tmp_path)
    assert r.returncode == 0
    assert "not present" in r.stdout.splitlines()[0]
    assert "theme" in r.stdout and "default" in r.stdout


@pytest.mark.parametrize("plant, says", [
    ("symlink", "is a symbolic link"),
    ("fifo", "not a regular file"),
    ("big", "byte cap"),
    ("writable", "writable by group or others"),
    ("toml", "config.toml: "),
    ("unknown", "unknown key 'colour'"),
    ("theme", "theme 'pink' is not one of"),
    ("binary", "not UTF-8"),
])
def test_a_hostile_config_file_is_one_line_exit_78(tmp_path, plant, says):
    d = tmp_path / "cfg" / "gew"
    d.mkdir(parents=True)
    p = d / "config.toml"
    if plant == "symlink":
        (tmp_path / "elsewhere").write_text('theme = "light"\n')
        p.symlink_to(tmp_path / "elsewhere")
    elif plant == "fifo":
        os.mkfifo(p, 0o600)           # a FIFO nobody writes: reading it must not hang
    elif plant == "big":
        p.write_text("# " + "x" * config.MAX_BYTES + "\n")
    elif plant == "writable":
        p.write_text('theme = "light"\n')
        os.chmod(p, 0o666)
    elif plant == "toml":
        p.write_text("[keymap\n")
    elif plant == "unknown":
        p.write_text('colour = "red"\n')
    elif plant == "theme":
        p.write_text('theme = "pink"\n')
    elif plant == "binary":
        p.write_bytes(b"theme = \"\xff\xfe\"\n")
    if plant not in ("symlink", "fifo", "writable"):
        os.chmod(p, 0o600)
    r = config_show(tmp_path)
    assert r.returncode == 78, (r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1
    assert says in r.stderr and "Traceback" not in r.stderr


# ---- opening a replay ---------------------------------------------------------------------

@sync
async def test_a_replay_opens_at_its_end_with_its_flows_on_screen(recording, scenario):
    app = make_app(recording, open_at="end")
    async with app.run_test(size=SIZE) as pilot:
        v = await opened(app)
        assert v.cursor.position == len(scenario.events)
        tree = app.screen.query_one(FlowTree)
        assert tree.line_count() >= len(v.flows) > 0
        # the flow with the template verdict is the one shown
        assert v.selected is not None and v.flows[v.selected].templates
        body = text_of(app.screen.query_one("#flow-body"))
        assert "no flow selected" not in body and f"flow {v.selected}" in body
        assert "before the first event" not in text_of(app.screen.query_one("#flow-cursor"))
        # one key goes back through the cursor's history: to before the first event
        await pilot.press("ctrl+o")
        v = await app.settle()
        assert v.cursor.position == 0


@sync
async def test_a_replay_can_open_at_its_first_template_match(recording, scenario):
    app = make_app(recording, open_at="first-match")
    async with app.run_test(size=SIZE) as pilot:
        v = await opened(app)
        assert v.hit and "template" in v.hit            # the status bar's flag
        assert v.breakpoints == ()                      # the opener's breakpoints are gone
        assert 0 < v.cursor.position < len(scenario.events)
        assert v.selected is not None and v.flows[v.selected].templates
        status = text_of(app.screen.query_one("StatusBar"))
        assert "● breakpoint" in status
        await pilot.press("ctrl+o")
        v = await app.settle()
        assert v.cursor.position == 0


@sync
async def test_without_open_at_a_replay_stays_at_the_start(recording):
    app = make_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        v = await app.settle()
        assert v.cursor.position == 0 and app.opener.done


def test_export_format_default_comes_from_the_config_file(tmp_path):
    from tests.support.gew_cli import LOSSY

    write_config(tmp_path, '[defaults]\nexport_format = "jsonl"\n')
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    r = subprocess.run([GEW, "export", str(LOSSY), "--what", "flows"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["kind"] == "flow"
    r = subprocess.run([GEW, "export", str(LOSSY), "--what", "flows", "--format", "text"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.startswith("flow 1 ")


# ---- the smaller things an operator noticed --------------------------------------------------

def test_a_transition_before_the_first_event_reads_minus_not_plus_minus():
    from gewtui.debugger import view_values
    from gewtui.pb import model_pb2

    f = model_pb2.FlowSnapshot(flow_id=1)
    f.transitions.add(event_id=2, ktime_ns=900_000_000, what="phase", to="emerged")
    f.transitions.add(event_id=3, ktime_ns=1_200_000_000, what="phase", to="evolving")
    rel = [e.rel for e in view_values.timeline(f, [], 1_000_000_000)]
    assert rel == ["-100.000ms", "+200.000ms"]


@sync
async def test_tree_rows_show_no_bare_dash_and_keep_their_template(tmp_path):
    from tests.support.gew_cli import GOLDEN
    from tests.support.tui_driver import _text

    for name, size in (("refused", (80, 24)), ("refused", (120, 40)), ("route-flap", (80, 24))):
        app = make_app(GOLDEN / f"{name}.gewrec", open_at="end")
        async with app.run_test(size=size) as pilot:
            v = await opened(app)
            tree = app.screen.query_one(FlowTree)
            for fid, row in v.flows.items():
                line = _text(tree, tree.line_of(fid))
                assert " - " not in line.replace(" -> ", ""), line
                if row.templates:
                    # the verdict is there: by name when the pane is wide, as a mark when not
                    assert row.templates[0][:5] in line or "⚑" in line, line
            if size[0] >= 120 and name == "refused":
                assert "connection-refused" in _text(tree, tree.line_of(1))
