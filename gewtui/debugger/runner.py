"""The pump: one thread that owns the debugger and everything it touches.

Place in the pipeline: the front ends (the Textual app, the shell) submit command lines and
receive immutable ``DebugView`` snapshots and command outputs through callbacks; they never
touch the debugger, its engines or the source from their own threads. In a loop, the pump:

1. runs the submitted commands, in order;
2. ingests what the source has (a recording is read ahead of the cursor in chunks; a live
   capture thread tells the pump when it queued events, and the pump sleeps until then, a
   command, or a timer; a live session without one is polled with a short timeout);
3. advances a running motion for a bounded slice, so a ``pause`` is never far away;
4. reports stops (breakpoint hits, steps, the end of a recording);
5. folds the state into one ``DebugView`` at most once per tick (``tick_s``; following a live
   session, ``live_tick_s``), and right after a command so keys feel immediate, and hands it
   to ``on_view``.

A live source is followed, not driven: its capture thread records the kernel on its own
(gewtui.kernel.capture) and the pump takes what was captured, so the engine may lag and never
holds the capture up. While it lags, views are built less often (at most ``view_share`` of
the pump's time goes to them), so the lag drains at the engine's own speed; the status bar
shows the lag meanwhile.

The intervention controller of a live session is driven from here too (``observe`` for every
event, ``tick`` about once a second), so the head engine has one thread only.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from gewtui.debugger import commands
from gewtui.debugger.core import Debugger
from gewtui.debugger.view_builder import ViewBuilder
from gewtui.debugger.view import DebugView, Message, Output
from gewtui.errors import GewError

# longest sleep of an idle pump over a live capture that tells it when events come
IDLE_S = 0.25
# least time between two views while a live session is followed (a frame costs the box CPU)
LIVE_TICK_S = 0.25


@dataclass
class _Request:
    line: str
    future: Future
    wait_stop: bool = False
    confirm_text: Any = None       # what was typed: a str, or an intervene.gate.Answer
    outputs: list[Output] = field(default_factory=list)


class Runner:
    def __init__(self, debugger: Debugger, views: ViewBuilder | None = None, *,
                 on_view: Callable[[DebugView], None] | None = None,
                 on_output: Callable[[list[Output], bool], None] | None = None,
                 tick_s: float = 0.1, read_ahead: int = 20000, poll_s: float = 0.01,
                 view_share: float = 0.1, live_tick_s: float = LIVE_TICK_S,
                 name: str = "gew-pump") -> None:
        self.d = debugger
        self.views = views or ViewBuilder(debugger)
        self.on_view = on_view or (lambda v: None)
        # on_output(outputs, owned): owned is False for what no request asked for (a live
        # breakpoint hit while following), which a line-based front end prints by itself.
        self.on_output = on_output or (lambda o, owned: None)
        self.tick_s = tick_s
        self.live_tick_s = live_tick_s
        self.read_ahead = read_ahead
        self.poll_s = poll_s
        self.view_share = view_share
        self._q: deque[_Request] = deque()
        self._cv = threading.Condition()
        self._waiting: list[_Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._last_view_version = -1
        self._next_view = 0.0
        self._next_tick = 0.0
        self.latest: DebugView | None = None
        self.error: BaseException | None = None
        self.quit_requested = False
        # A live source that says when its capture queued events lets this thread sleep
        # until then (or a command, or a timer) instead of waking every poll_s: each
        # wakeup takes a CPU a busy workload wants.
        self._told = False
        on_data = getattr(debugger.source, "on_data", None)
        self._event_driven = bool(on_data(self._nudge)) if callable(on_data) else False

    # ---- lifetime -------------------------------------------------------------------------

    def start(self) -> "Runner":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- requests (any thread) ---------------------------------------------------------

    def submit(self, line: str, *, wait_stop: bool = False,
               confirm_text: Any = None) -> Future:
        """Queue a command line; the future resolves to its outputs (with ``wait_stop``,
        only once a motion it started has stopped, its Stop included)."""
        fut: Future = Future()
        if not self.alive:
            fut.set_exception(RuntimeError("the debugger is not running"))
            return fut
        self._put(_Request(line, fut, wait_stop, confirm_text))
        return fut

    def _put(self, req: _Request) -> None:
        with self._cv:
            self._q.append(req)
            self._cv.notify_all()

    def call(self, line: str, *, wait_stop: bool = True, timeout: float | None = None,
             confirm_text: Any = None) -> list[Output]:
        return self.submit(line, wait_stop=wait_stop, confirm_text=confirm_text).result(timeout)

    def view_now(self, timeout: float = 10.0) -> DebugView:
        """A fresh view, built after everything submitted so far."""
        fut: Future = Future()
        self._put(_Request("", fut))
        fut.result(timeout)
        assert self.latest is not None
        return self.latest

    # ---- the loop (pump thread) ------------------------------------------------------------

    def _loop(self) -> None:
        d = self.d
        observe = getattr(d.intervention, "observe", None)
        if observe is not None:
            d.observers.append(observe)
        try:
            while not self._stop.is_set():
                acted = self._commands()
                if self._stop.is_set():
                    break
                busy = d.motion is not None and not d.following
                told = self._event_driven
                if d.live:
                    at_once = busy or acted or told
                    got = d.ingest(50000, timeout_s=0.0 if at_once else self.poll_s)
                elif not d.log.complete:
                    got = d.ingest(self.read_ahead)
                else:
                    got = 0
                if busy:
                    d.run(0.03)
                    # a live motion at the head (a step, a goto past the end) waits for the
                    # kernel's next event: it sleeps like an idle pump instead of spinning
                    busy = d.motion is not None and not d.following and not (
                        d.live and d.position >= len(d.log))
                self._tick_intervention()
                stops = d.take_stops()
                if stops:
                    self.on_output(list(stops), bool(self._waiting))
                    for r in self._waiting:
                        r.outputs.extend(stops)
                now = time.monotonic()
                if acted or stops or (d.version != self._last_view_version and now >= self._next_view):
                    self._publish()
                self._resolve_waiting()
                if not acted and not got and not busy and not self._pending():
                    if d.idle(0.02):
                        continue
                    # A live source normally blocks in its poll; one that returned at once
                    # with nothing must not make this loop spin.
                    self._idle_wait(self._until_due() if told
                                    else self.poll_s if d.live else self.tick_s)
        except BaseException as e:     # surfaced to the front end, which exits with it
            self.error = e
            text = e.message if isinstance(e, GewError) else f"internal error in the debugger: {e!r}"
            self.on_output([Message(text, "error")], False)
            for r in self._waiting:
                if not r.future.done():
                    r.future.set_exception(e)
            self._fail_queued(e)
            # Not re-raised: a traceback from this thread would land on the TUI's screen;
            # the front end raises ``error`` itself once it has left.

    def _publish(self) -> None:
        t0 = time.monotonic()
        view = self.views.build()
        self.latest = view
        self._last_view_version = self.d.version
        now = time.monotonic()
        # Following a live session, the view changes with the box, not with the operator: a
        # few frames a second show it, and each frame costs the box (building it here, and
        # painting it on the front end's thread). Commands still get theirs at once.
        wait = self.live_tick_s if (self.d.live and self.d.following) else self.tick_s
        if getattr(self.d.source, "lag", 0):
            # behind the capture: the next view waits until folding had its share of the time
            wait = max(wait, (now - t0) * (1 - self.view_share) / self.view_share)
        self._next_view = now + wait
        self.on_view(view)

    def _pending(self) -> bool:
        with self._cv:
            return bool(self._q)

    def _idle_wait(self, seconds: float) -> None:
        with self._cv:
            if not self._q and not self._stop.is_set() and not self._told:
                self._cv.wait(seconds)
            self._told = False

    def _nudge(self) -> None:
        """The capture queued events (or ended): called on its thread."""
        with self._cv:
            self._told = True
            self._cv.notify_all()

    def _until_due(self) -> float:
        """How long an event-driven idle may sleep: until a view left unbuilt is due, the
        intervention timer, or at most IDLE_S."""
        now = time.monotonic()
        due = now + IDLE_S
        if self.d.version != self._last_view_version:
            due = min(due, self._next_view)
        if self.d.intervention is not None:
            due = min(due, self._next_tick)
        return max(0.001, due - now)

    def _next_request(self) -> _Request | None:
        """The next request to run now. Requests run in order: while a motion runs, the
        next one waits for it to stop (so three quick 'step's are three steps and 'flow 2'
        after 'goto #9' sees #9), but a 'pause' or 'quit' queued behind it goes first. A live
        motion waiting at the head for the kernel does not hold inspection commands."""
        with self._cv:
            if not self._q:
                return None
            d = self.d
            busy = d.motion is not None and not d.following
            if busy and d.live and d.position >= len(d.log):
                busy = commands.motion_command(self._q[0].line)
            if busy:
                for r in self._q:
                    if _urgent(r.line):
                        self._q.remove(r)
                        return r
                return None
            return self._q.popleft()

    def _commands(self) -> bool:
        acted = False
        while True:
            req = self._next_request()
            if req is None:
                return acted
            acted = True
            if not req.line:
                self._publish()
                req.future.set_result([])
                continue
            self._execute(req)

    def _execute(self, req: _Request) -> None:
        d = self.d
        confirm = None
        if req.confirm_text is not None:
            text = req.confirm_text
            confirm = lambda prompt, flow_id: text
        ctx = commands.Context(d, self.views, confirm)
        try:
            outs = commands.execute(ctx, req.line)
        except commands.Quit:
            self.quit_requested = True
            req.future.set_result([Message("quit")])
            return
        except Exception as e:   # a command's bug must not take the session down
            outs = [Message(f"{req.line.split()[0]}: internal error: {e!r}", "error")]
        req.outputs.extend(outs)
        if outs:
            self.on_output(list(outs), True)
        if req.wait_stop and d.running and not (d.live and d.following and
                                                 not commands.motion_command(req.line)):
            self._waiting.append(req)
        else:
            # A synchronous command's stop (pause, back, goto backwards) belongs to it.
            stops = d.take_stops()
            if stops:
                self.on_output(list(stops), True)
                req.outputs.extend(stops)
            self._publish()
            req.future.set_result(req.outputs)

    def _resolve_waiting(self) -> None:
        if not self._waiting or self.d.running:
            return
        for r in self._waiting:
            if not r.future.done():
                r.future.set_result(r.outputs)
        self._waiting.clear()

    def _tick_intervention(self) -> None:
        ctl = self.d.intervention
        if ctl is None:
            return
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + 1.0
        tick = getattr(ctl, "tick", None)
        if tick is not None:
            if tick():
                self.d.changed()

    def _fail_queued(self, e: BaseException) -> None:
        with self._cv:
            pending, self._q = list(self._q), deque()
        for req in pending:
            if not req.future.done():
                req.future.set_exception(e)


def _urgent(line: str) -> bool:
    try:
        parsed = commands.parse(line)
    except Exception:
        return False
    return parsed is not None and parsed[0].name in ("pause", "quit")
