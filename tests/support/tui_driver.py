"""Drive gew-tui as an operator would, headless: the app factory with a fixed clock, typed
commands, the text a widget shows, and async test bodies run without an asyncio plugin.
"""
from __future__ import annotations

import asyncio
import functools
import io

from rich.console import Console

from gewtui.debugger.core import Debugger
from gewtui.debugger.sources import ReplaySource
from gewtui.present import renderables
from gewtui.tui.app import FixedClock, GewApp, build_app
from gewtui.tui.widgets.bars import CommandBar
from gewtui.tui.widgets.flow_tree import FlowTree


SIZE = (80, 24)


def sync(fn):
    """Run an async test body (no asyncio plugin is assumed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        return asyncio.run(fn(*args, **kw))
    return wrapper


def make_app(path, theme="dark") -> GewApp:
    return build_app(Debugger(ReplaySource(path)), theme=theme, clock=FixedClock(),
                     cursor_blink=False)


async def command(app: GewApp, pilot, line: str):
    """Type a line into the command bar, as an operator would."""
    await pilot.press("colon")
    bar = app.screen.query_one(CommandBar)
    assert bar.has_focus
    bar.value = line
    await pilot.press("enter")
    return await app.settle()


async def read_all(app: GewApp, known: int, timeout: float = 10.0):
    """Settle until the pump has read ``known`` events from a live source (a view built
    for a request can come before the pump's next read of what was just pushed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await app.settle()
        if v.cursor.known >= known or asyncio.get_running_loop().time() > deadline:
            return v
        await asyncio.sleep(0.02)


def text_of(widget) -> str:
    """A Static's content as plain text (what the operator reads)."""
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None,
                      theme=renderables.THEME)
    console.print(widget.content)
    return console.export_text()


def _text(tree: FlowTree, line: int) -> str:
    """Line ``line`` of the flow tree as plain text, as painted."""
    return tree.render_line(line - tree.scroll_offset.y).text
