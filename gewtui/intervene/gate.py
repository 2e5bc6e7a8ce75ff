"""The safety gate: may this action be executed on this flow, now? Pure Python, no kernel.

Place in the pipeline: the intervention controller calls ``evaluate_gate`` at the moment of
execution with the flow snapshot and reason chain as the engine holds them then, a fresh
``SessionContext`` and the operator's ``Confirmation``. Six conditions, all required:

    scope         the flow is inside the session scope (FlowSnapshot.in_scope)
    template      a template matched on the flow allows the action
                  (ReasonChain.allowed_interventions)
    reason-chain  the flow has an L3 reason chain, for this flow and this session
    override      the session was started with --allow-intervention on the LOCAL command line
    complete      observation is complete: no lost records
    confirmation  an explicit confirmation bound to this flow id and this session id: the typed
                  flow id equals the flow's id, it is fresh, and it has not been used before

The result is a GateEvaluation protobuf naming every condition with ok/why; a refusal is a
GateRefused error naming every failed condition (``refusal``).

Where the override may come from. ``LocalOverride`` is the only thing the "override" condition
accepts, and ``LocalOverride.from_command_line`` only returns one when the flag is present in
this process's own argument vector (/proc/self/cmdline, which no environment variable, config
file or recording can write). ``SessionContext.from_recording`` never carries one, whatever the
recording's SessionInfo.allow_intervention says: a replayed session is inert.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from gewtui.errors import GateRefused
from gewtui.pb import intervention_pb2, model_pb2, recording_pb2

OVERRIDE_FLAG = "--allow-intervention"
CONDITIONS = ("scope", "template", "reason-chain", "override", "complete", "confirmation")
ACTIONS = ("drop",)              # replay and redirect are later levels
CONFIRMATION_MAX_AGE_NS = 60 * 1_000_000_000

# argparse accepts unambiguous prefixes; "--allow-i" is the shortest that is not also a
# prefix of --allow-risky.
_MIN_PREFIX = len("--allow-i")
_KEY = object()


def read_cmdline() -> list[str]:
    """This process's argument vector as the kernel holds it."""
    with open("/proc/self/cmdline", "rb") as f:
        raw = f.read()
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]


def flag_on_command_line(argv: Sequence[str], flag: str = OVERRIDE_FLAG) -> bool:
    for a in argv:
        if a == "--":
            return False          # everything after is an operand, not an option
        if a == flag or (len(a) >= _MIN_PREFIX and flag.startswith(a)):
            return True
    return False


class LocalOverride:
    """Proof that --allow-intervention was given on this process's own command line.
    Only ``from_command_line`` makes one."""

    __slots__ = ("argv",)

    def __init__(self, key: object, argv: tuple[str, ...]):
        if key is not _KEY:
            raise TypeError("a LocalOverride only comes from LocalOverride.from_command_line")
        self.argv = argv

    @classmethod
    def from_command_line(cls, requested: bool,
                          argv: Sequence[str] | None = None) -> "LocalOverride | None":
        """``requested``: the parsed --allow-intervention option. ``argv`` defaults to
        /proc/self/cmdline; it is a parameter only so tests can state a command line."""
        if not requested:
            return None
        args = tuple(read_cmdline() if argv is None else argv)
        return cls(_KEY, args) if flag_on_command_line(args) else None

    def __repr__(self) -> str:
        return "LocalOverride(--allow-intervention)"


@dataclass(frozen=True)
class SessionContext:
    """What the gate needs to know about the session, taken at the moment of evaluation."""

    session_id: str
    override: LocalOverride | None = None
    override_requested: bool = False      # the session said so; honoured only via ``override``
    observation_complete: bool = True
    lost_records: int = 0
    incomplete_reason: str = ""
    replay: bool = False
    at_event_id: int = 0
    ktime_ns: int = 0
    now_ns: int = field(default_factory=time.monotonic_ns)
    used_confirmations: frozenset[str] = frozenset()

    @classmethod
    def live(cls, session_id: str, allow_intervention: bool, *,
             argv: Sequence[str] | None = None, **kw) -> "SessionContext":
        """A live session's context. ``allow_intervention`` is the option as the session
        holds it; the override exists only if the flag is also on the local command line."""
        return cls(session_id=session_id,
                   override=LocalOverride.from_command_line(allow_intervention, argv),
                   override_requested=allow_intervention, **kw)

    @classmethod
    def from_recording(cls, header: recording_pb2.RecordingHeader, **kw) -> "SessionContext":
        """A replayed session: never an override, whatever the header says."""
        kw.pop("override", None)
        return cls(session_id=header.session.session_id, override=None,
                   override_requested=header.session.allow_intervention, replay=True, **kw)


@dataclass(frozen=True)
class Confirmation:
    """The operator typed ``typed`` into a confirmation opened for ``flow_id`` in
    ``session_id`` at ``created_ns`` (CLOCK_MONOTONIC). Single use: ``nonce``."""

    typed: str
    flow_id: int
    session_id: str
    created_ns: int
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    @classmethod
    def typed_now(cls, typed: str, flow_id: int, session_id: str,
                  clock: Callable[[], int] = time.monotonic_ns) -> "Confirmation":
        """A confirmation typed at this instant (programmatic callers; front ends that ask a
        person use ``Answer``, stamped when the question was put)."""
        return cls(typed=typed, flow_id=flow_id, session_id=session_id, created_ns=clock())

    @classmethod
    def from_answer(cls, answer: "Answer", flow_id: int, session_id: str) -> "Confirmation":
        return cls(typed=answer.text, flow_id=flow_id, session_id=session_id,
                   created_ns=answer.opened_ns, nonce=answer.nonce)


@dataclass(frozen=True)
class Answer:
    """What the operator typed into a confirmation dialog, stamped when the dialog *opened*:
    the 60 s run from the question, not from the answer, however long the typing took, and
    the nonce is the dialog's, so one dialog confirms at most one drop."""

    text: str
    opened_ns: int
    nonce: str

    @classmethod
    def opener(cls, clock: Callable[[], int] = time.monotonic_ns) -> Callable[[str], "Answer"]:
        """Call when the dialog opens; call the result with what was typed."""
        opened, nonce = clock(), secrets.token_hex(8)
        return lambda text: cls(text, opened, nonce)


_TYPED = re.compile(r"\s*[fF#]?([0-9]{1,20})\s*", re.ASCII)


def typed_flow_id(typed: str) -> int | None:
    """The flow id the operator typed: "17", "f17" or "#17"; None if it is not one."""
    m = _TYPED.fullmatch(typed)
    return int(m.group(1)) if m else None


def _scope(flow: model_pb2.FlowSnapshot | None) -> tuple[bool, str]:
    if flow is None:
        return False, "no such flow"
    if not flow.in_scope:
        return False, f"flow {flow.flow_id} is outside the session scope"
    return True, f"flow {flow.flow_id} is inside the session scope"


def _template(flow, chain, action) -> tuple[bool, str]:
    if chain is None:
        return False, "no reason chain, so no template allowance"
    if action in chain.allowed_interventions:
        names = ", ".join(flow.templates) if flow is not None and flow.templates else "a template"
        return True, f"{names} allows {action}"
    if flow is not None and flow.templates:
        return False, f"matched templates ({', '.join(flow.templates)}) do not allow {action}"
    return False, f"no matched template allows {action}"


def _chain(flow, chain, session: SessionContext) -> tuple[bool, str]:
    if chain is None:
        return False, "the flow has no reason chain"
    if flow is not None and chain.flow_id != flow.flow_id:
        return False, f"the chain is for flow {chain.flow_id}, not flow {flow.flow_id}"
    if chain.session_id and chain.session_id != session.session_id:
        return False, f"the chain belongs to session {chain.session_id}"
    if not chain.HasField("root") or chain.root.layer != model_pb2.L3:
        return False, "the chain has no L3 reason"
    return True, f"L3 chain as of event {chain.at_event_id}"


def _override(session: SessionContext) -> tuple[bool, str]:
    if session.replay:
        return False, "a replayed recording is inert; no intervention executes"
    if isinstance(session.override, LocalOverride):
        return True, f"{OVERRIDE_FLAG} given on the local command line"
    if session.override_requested:
        return False, (f"{OVERRIDE_FLAG} was requested but not on this process's command line; "
                       "only the local command line counts")
    return False, f"the session was not started with {OVERRIDE_FLAG}"


def _complete(session: SessionContext) -> tuple[bool, str]:
    if session.lost_records:
        return False, f"{session.lost_records} lost records: observation is incomplete"
    if not session.observation_complete:
        return False, f"observation is incomplete: {session.incomplete_reason or 'see session'}"
    return True, "observation complete, no lost records"


def _confirmation(flow, session: SessionContext, c: Confirmation | None) -> tuple[bool, str]:
    if c is None:
        return False, "no confirmation"
    if flow is None:
        return False, "no flow to bind the confirmation to"
    typed = typed_flow_id(c.typed)
    if typed != flow.flow_id:
        return False, f"typed {c.typed.strip()!r}, not flow id {flow.flow_id}"
    if c.flow_id != flow.flow_id:
        return False, f"the confirmation was opened for flow {c.flow_id}"
    if c.session_id != session.session_id:
        return False, f"the confirmation belongs to session {c.session_id!r}"
    age = session.now_ns - c.created_ns
    if age < 0 or age > CONFIRMATION_MAX_AGE_NS:
        return False, (f"the confirmation is stale ({age / 1e9:.0f} s old, "
                       f"limit {CONFIRMATION_MAX_AGE_NS // 1_000_000_000} s)")
    if c.nonce in session.used_confirmations:
        return False, "the confirmation was already used"
    return True, f"flow {flow.flow_id} typed and confirmed in session {session.session_id}"


def evaluate_gate(flow: model_pb2.FlowSnapshot | None, chain: model_pb2.ReasonChain | None,
                  session: SessionContext, confirmation: Confirmation | None,
                  action: str = "drop") -> intervention_pb2.GateEvaluation:
    """Evaluate every condition (none short-circuits, so a refusal names them all)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown intervention action {action!r}")
    results = {
        "scope": _scope(flow),
        "template": _template(flow, chain, action),
        "reason-chain": _chain(flow, chain, session),
        "override": _override(session),
        "complete": _complete(session),
        "confirmation": _confirmation(flow, session, confirmation),
    }
    ev = intervention_pb2.GateEvaluation(at_event_id=session.at_event_id,
                                         ktime_ns=session.ktime_ns)
    for name in CONDITIONS:
        ok, why = results[name]
        ev.conditions.add(name=name, ok=ok, why=why)
    ev.allowed = all(c.ok for c in ev.conditions)
    return ev


def failed_conditions(ev: intervention_pb2.GateEvaluation) -> list[str]:
    return [c.name for c in ev.conditions if not c.ok]


def refusal(ev: intervention_pb2.GateEvaluation, flow_id: int,
            action: str = "drop") -> GateRefused:
    """The one-line error naming every failed condition and why."""
    failed = "; ".join(f"{c.name} ({c.why})" for c in ev.conditions if not c.ok)
    return GateRefused(f"{action} of flow {flow_id} refused: {failed}")
