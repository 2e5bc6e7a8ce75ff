"""The intervention controller's collaborators, as the controller sees them: the engine it
reads flows from, the kernel backend it drops through, the session facts the gate needs, and
the errors it raises.

Place in the pipeline: gewtui.intervene.controller is written against these; the kernel
backend (gewtui.intervene.backend), the live session's views (gewtui.intervene.wiring) and
the test fakes provide them. A module of its own so that the views need not import the
controller that uses them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from gewtui.errors import GewError
from gewtui.intervene.classifier import DenyCounters, DenyTuple
from gewtui.intervene.targets import Attachment
from gewtui.pb import intervention_pb2, model_pb2


class ReplayInert(GewError):
    """An intervention controller was asked for over something that is not a live session."""

    code = 69


class DropFailed(GewError):
    """The gate allowed the drop but executing it failed; everything was rolled back."""


class DropBackend(Protocol):
    """The kernel side of a drop (gewtui.intervene.backend.KernelDropBackend in a session)."""

    def deny(self, tuples: list[DenyTuple], expires_ns: int) -> list[DenyTuple]: ...
    def allow(self, tuples: Iterable[DenyTuple]) -> dict[DenyTuple, DenyCounters]: ...
    def counters(self, tuples: Iterable[DenyTuple]) -> DenyCounters: ...
    def attach(self, where: Attachment) -> None: ...
    def detach(self, where: Attachment) -> None: ...
    def close(self) -> None: ...


class EngineReader(Protocol):
    """What the controller needs from the observation plane's engine."""

    def flow(self, flow_id: int) -> model_pb2.FlowSnapshot | None: ...
    def chain(self, flow_id: int) -> model_pb2.ReasonChain | None: ...
    def add_intervention(self, rec: intervention_pb2.InterventionRecord) -> None: ...
    def port_range(self, netns: int) -> tuple[int, int]: ...


@dataclass(frozen=True)
class GateFacts:
    """The session's state the gate needs, read at the moment of execution."""

    observation_complete: bool
    lost_records: int
    incomplete_reason: str = ""
    at_event_id: int = 0
