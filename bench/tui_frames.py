"""gew-tui frame figures with 10,000 flows on screen, under Textual's headless driver: the
rows of the "Debugger and TUI" section that ``bench_debugger.bench_tui`` delegates here
(``python bench/tui_frames.py`` prints them alone).

What a frame costs is told apart from what Textual and its test harness add around it:

- **frame work**: the CPU time the UI thread spends from the input (a key, a command line,
  a view from the debugger's pump) to the end of the frame that shows its result: message
  dispatch, the widgets' handlers, layout, compositing and the driver's write. It is read
  with ``time.thread_time()`` on the UI thread, so time the thread spends waiting (for
  Textual's 60 fps frame timer, for the GIL the pump thread holds) is left out.
- **paint**: the share of it inside Textual's frame (``Screen._on_timer_update``: layout,
  compositor, write), summed over the frames painted until the result was on screen.
- **key to painted frame**: wall time from the input to the end of that frame. Textual
  paints at most 60 times a second, so this includes up to one frame period of waiting.
- **Pilot round trip**: ``pilot.press`` + ``pilot.pause`` as the tests use them. Pilot
  sleeps until the process looks idle (at least 20 ms per wait, a key press waits twice),
  so its floor is Textual's, not the app's: the same round trip on an app with one Static
  is measured in the same run as the baseline.

Every figure is a median of repeated runs with [min..max]; nothing here asserts a time.
"""
from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _util  # noqa: E402
from gewtui.debugger import commands  # noqa: E402
from gewtui.debugger.core import Debugger  # noqa: E402
from gewtui.debugger.view_builder import ViewBuilder  # noqa: E402
from gewtui.debugger.sources import MemorySource  # noqa: E402
from gewtui.pb import events_pb2 as E  # noqa: E402

N_FLOWS = 10_000
SIZE = (120, 40)
RUNS = 10


def flows_stream(n_flows: int):
    """``n_flows`` connections to distinct peers opened and established, then each one in
    turn moving ESTABLISHED -> FIN_WAIT1: a change of its row (TCP state) that keeps its
    phase, so from position ``2 * n_flows`` a ``step 100`` changes 100 rows of the tree
    without changing its structure, and a goto back before ``n_flows`` moves every flow
    back to another phase (the tree is rebuilt)."""
    t, ev_id = 1_000_000_000, 0
    for old, new in ((E.TCP_CLOSE, E.TCP_SYN_SENT), (E.TCP_SYN_SENT, E.TCP_ESTABLISHED),
                     (E.TCP_ESTABLISHED, E.TCP_FIN_WAIT1)):
        for k in range(n_flows):
            t += 1000
            ev_id += 1
            ev = E.Event(id=ev_id, ktime_ns=t)
            b = ev.tcp_state
            b.old_state, b.new_state = old, new
            b.sock = 0xFFFF888000000000 + k * 0x1000
            tu = b.tuple
            tu.family, tu.protocol, tu.dport, tu.sport = 2, 6, 443, 30000 + k % 30000
            tu.saddr = bytes((10, 0, 0, 1))
            tu.daddr = bytes((10, 2 + (k >> 16), (k >> 8) & 255, k & 255))
            yield ev


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def spread(xs: list[float]) -> str:
    return _util.spread([x * 1000 for x in xs], "{:.1f} ms")


def _run(ctx: commands.Context, line: str) -> None:
    out = commands.execute(ctx, line)
    assert not [o for o in out if getattr(o, "level", "") == "error"], out
    ctx.debugger.settle(max_s=3600)
    ctx.debugger.take_stops()


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cpu(fn: Callable[[], object]) -> float:
    """The calling thread's CPU time for ``fn`` (what other processes take is left out)."""
    c0 = time.thread_time()
    fn()
    return time.thread_time() - c0


# ---- what Textual does per frame ------------------------------------------------------------

class Frames:
    """Times Textual's frames (``Screen._on_timer_update``, counted when it painted) and
    resolves a waiter at the end of the first frame that began with its condition true.
    Patches the Screen class while active (a bench instrument, not product code)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, float]] = []      # (wall, cpu) of each painted frame
        self._painted = 0
        self._waiter: tuple[Callable[[], bool], asyncio.Future] | None = None

    def __enter__(self) -> "Frames":
        from textual.screen import Screen

        self._saved = Screen._on_timer_update, Screen._compositor_refresh
        timer_update, compositor_refresh = self._saved
        frames = self

        def _compositor_refresh(screen) -> None:
            frames._painted += 1
            compositor_refresh(screen)

        def _on_timer_update(screen) -> None:
            w = frames._waiter
            ready = w is not None and w[0]()
            before = frames._painted
            t0, c0 = time.perf_counter(), time.thread_time()
            timer_update(screen)
            if frames._painted == before:
                return
            frames.log.append((time.perf_counter() - t0, time.thread_time() - c0))
            if ready and w is not None and not w[1].done():
                frames._waiter = None
                w[1].set_result((time.perf_counter(), time.thread_time()))

        Screen._compositor_refresh = _compositor_refresh
        Screen._on_timer_update = _on_timer_update
        return self

    def __exit__(self, *exc) -> None:
        from textual.screen import Screen

        Screen._on_timer_update, Screen._compositor_refresh = self._saved

    async def frame(self, act: Callable[[], object], ready: Callable[[], bool]) -> dict[str, float]:
        """Run ``act`` and wait for the frame that shows ``ready``: its latency, the UI
        thread's CPU time until then, and the paint share of it."""
        fut = asyncio.get_running_loop().create_future()
        self._waiter = (ready, fut)
        n0 = len(self.log)
        t0, c0 = time.perf_counter(), time.thread_time()
        act()
        t1, c1 = await asyncio.wait_for(fut, 30)
        painted = self.log[n0:]
        return {"latency": t1 - t0, "cpu": c1 - c0, "paint": sum(p[1] for p in painted),
                "longest": max(p[1] for p in painted), "frames": len(painted)}


class FullCollections:
    """The garbage collector's full passes (generation 2) while active: they stop every
    thread, so one that lands in a frame is that frame's longest part."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._t0)

    def __enter__(self) -> "FullCollections":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)

    def figure(self) -> str:
        if not self.pauses:
            return "none"
        return f"{len(self.pauses)}, longest {ms(max(self.pauses))}"


def _key(app, key: str) -> Callable[[], None]:
    from textual import events

    return lambda: app.post_message(events.Key(key, None))


def _col(results: list[dict[str, float]], k: str) -> list[float]:
    return [r[k] for r in results]


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.pause()


# ---- the baseline: an app with one Static ---------------------------------------------------

async def empty_app(frames: Frames) -> dict[str, list[float]]:
    from textual.app import App
    from textual.binding import Binding
    from textual.widgets import Static

    class One(App):
        BINDINGS = [Binding("pagedown", "bump", "bump")]

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def compose(self):
            yield Static("0", id="n")

        def action_bump(self) -> None:
            self.n += 1
            self.query_one("#n", Static).update(str(self.n))

    app = One()
    out: dict[str, list[float]] = {"frame": [], "latency": [], "pilot": []}
    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        for _ in range(RUNS):
            target = app.n + 1
            r = await frames.frame(_key(app, "pagedown"), lambda: app.n >= target)
            out["frame"].append(r["cpu"])
            out["latency"].append(r["latency"])
            await _settle(pilot)
            t0 = time.perf_counter()
            await pilot.press("pagedown")
            await pilot.pause()
            out["pilot"].append(time.perf_counter() - t0)
    return out


# ---- gew-tui with 10,000 flows ---------------------------------------------------------------

def bench_tui(rows: list[tuple[str, str]]) -> None:
    from gewtui.tui.app import FixedClock, build_app
    from gewtui.tui.widgets.flow_tree import FlowTree

    events = list(flows_stream(N_FLOWS))
    d = Debugger(MemorySource(events))
    views = ViewBuilder(d)
    ctx = commands.Context(d, views)
    _run(ctx, f"goto #{2 * N_FLOWS}")
    t_full = min(_timed(ViewBuilder(d).build) for _ in range(3))
    views.build()
    _run(ctx, "step 100")
    t_inc = _timed(views.build)
    _run(ctx, "back 100")
    t_back_view = _timed(views.build)
    rows += [
        (f"view build, {N_FLOWS:,} flows, every row (first view)", ms(t_full)),
        ("view build after a step that changed 100 rows", ms(t_inc)),
        ("view build after back 100 (rows resynced by fingerprint)", ms(t_back_view)),
    ]

    collections = FullCollections()

    async def measure() -> None:
        with Frames() as frames, collections:
            base = await empty_app(frames)
            app = build_app(d, clock=FixedClock(), cursor_blink=False)
            async with app.run_test(size=SIZE) as pilot:
                await app.settle()
                await _settle(pilot)
                tree = app.screen.query_one(FlowTree)
                assert tree.line_count() >= N_FLOWS
                # An unchanged view applied: what the UI thread does, and whether it paints.
                unchanged, unchanged_frames = [], []
                for _ in range(RUNS):
                    n0 = len(frames.log)
                    c0 = time.thread_time()
                    app.screen.apply_view(app.view)
                    unchanged.append(time.thread_time() - c0)
                    await _settle(pilot)
                    unchanged_frames.append(len(frames.log) - n0)
                # step 100: the command line to the frame showing where it stopped.
                steps, changed = [], []
                for _ in range(RUNS):
                    before = app.view
                    target = before.cursor.position + 100

                    def stopped(target=target) -> bool:
                        v = app.view
                        return v.cursor.position == target and v.cursor.state == "paused"

                    steps.append(await frames.frame(lambda: app.run_line("step 100"), stopped))
                    after = app.view
                    changed.append(sum(1 for f, r in after.flows.items() if before.flows.get(f) is not r))
                    await _settle(pilot)
                # Page down in the tree: the key to the frame showing the new page.
                tree.focus()
                await _settle(pilot)
                pages, page_pilot = [], []
                for _ in range(RUNS):
                    pages.append(await frames.frame(_key(app, "pagedown"),
                                                    lambda start=tree.cursor: tree.cursor != start))
                    await _settle(pilot)
                    t0 = time.perf_counter()
                    await pilot.press("pagedown")
                    await pilot.pause()
                    page_pilot.append(time.perf_counter() - t0)
                # The tree's share of a page-down frame: its visible lines rendered afresh
                # (no line cached) and again (cached), as the compositor asks for them.
                fresh, cached = [], []
                region = tree.size.region
                for _ in range(RUNS):
                    tree.refresh()
                    tree.clear_line_cache()
                    fresh.append(_cpu(lambda: tree.render_lines(region)))
                    tree.refresh()
                    cached.append(_cpu(lambda: tree.render_lines(region)))
                await _settle(pilot)
                # A structural change: every flow's phase moves (back to before ESTABLISHED).
                rebuilds = tree.rebuilds
                goto = await frames.frame(
                    lambda: app.run_line(f"goto #{N_FLOWS + 1}"),
                    lambda: app.view.cursor.position == N_FLOWS + 1 and app.view.cursor.state == "paused")
                assert tree.rebuilds > rebuilds

        def frames_of(results: list[dict[str, float]]) -> str:
            return f"{statistics.median(_col(results, 'frames')):.0f}"

        rows.extend([
            ("baseline, an app with one Static: key to painted frame, UI thread CPU",
             spread(base["frame"])),
            ("baseline, an app with one Static: key to painted frame, wall", spread(base["latency"])),
            ("baseline, an app with one Static: Pilot round trip (press + pause)", spread(base["pilot"])),
            (f"an unchanged view applied ({SIZE[0]}x{SIZE[1]}): UI thread CPU / frames painted",
             f"{spread(unchanged)} / {statistics.median(unchanged_frames):.0f}"),
            (f"step 100 ({statistics.median(changed):.0f} rows change): UI thread CPU from the command "
             f"to the painted stop ({frames_of(steps)} frames painted)", spread(_col(steps, "cpu"))),
            ("step 100: the longest of those frames (layout, compositor, write)", spread(_col(steps, "longest"))),
            ("step 100: command to painted stop, wall (the pump runs the step and builds the view meanwhile)",
             spread(_col(steps, "latency"))),
            (f"page down in the {N_FLOWS:,}-row tree: UI thread CPU from the key to the painted page "
             f"({frames_of(pages)} frame painted)", spread(_col(pages, "cpu"))),
            ("page down: the longest frame (layout, compositor, write)", spread(_col(pages, "longest"))),
            ("page down: key to painted frame, wall", spread(_col(pages, "latency"))),
            ("page down: Pilot round trip (press + pause)", spread(page_pilot)),
            ("the tree's share of a page-down frame: render its visible lines (CPU), none cached / cached",
             f"{spread(fresh)} / {spread(cached)}"),
            (f"goto backwards: {N_FLOWS:,} rows change phase, tree rebuilt: UI thread CPU from the "
             f"command to the painted result ({goto['frames']} frames painted)", ms(goto["cpu"])),
            ("goto backwards: the longest of those frames", ms(goto["longest"])),
            ("goto backwards: command to painted frame, wall (the pump rebuilds every row meanwhile)",
             ms(goto["latency"])),
            ("full garbage-collector passes while measuring the frames (in the maxima above)",
             collections.figure()),
        ])

    asyncio.run(measure())


def main() -> int:
    rows: list[tuple[str, str]] = []
    bench_tui(rows)
    print("| what | figure |\n|---|---|")
    for what, fig in rows:
        print(f"| {what} | {fig} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
