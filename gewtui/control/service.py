"""The Control service's handlers: every call verified, then answered from the recording.

Place in the pipeline: registered by gewtui.control.server on the session's socket. The
handlers take the request's raw bytes (so the signature is checked over exactly what the
peer sent, before anything decodes it), answer from the session's recording header and the
control plane's own fold of the recording (gewtui.control.follow.Head), and stream through
gewtui.control.streams. RequestDrop only queues a proposal (gewtui.control.proposals).

What a peer cannot do is absent, not checked: no request message has a field for the risk
override, the intervention override or the operator's confirmation. A proposal the session
could not act on is refused with FAILED_PRECONDITION naming the condition the local operator
would have had to give (``--allow-intervention``) or the capability that would need
``--allow-risky``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc

from gewtui.control import keys, signing, streams
from gewtui.control.follow import Head
from gewtui.control.proposals import ProposalBook
from gewtui.pb import control_pb2 as cpb
from gewtui.pb import model_pb2, session_pb2
from gewtui.recording.reader import RecordingReader

SERVICE = "gewyvern.v1.Control"
PROTOCOL_VERSION = 1
MAX_STREAMS = 8
# the capabilities a drop needs; one of them risky means a drop would need --allow-risky
DROP_CAPABILITIES = ("clsact", "cls_bpf-direct-action")


def _ident(b: bytes) -> bytes:
    return b


@dataclass
class ServeContext:
    """What the service knows of the session it serves (all read-only to it)."""

    recording: str
    engine_factory: Callable[[], Any]
    socket_path: str = ""
    stats: Callable[[], Any] | None = None        # LiveSession.stats, for lost/complete
    proposals: ProposalBook | None = None         # None: nobody at a keyboard to confirm
    log: Callable[[str], None] = lambda s: None
    stop: threading.Event = field(default_factory=threading.Event)


class ControlService:
    def __init__(self, ctx: ServeContext, verifier: signing.Verifier, server_public: bytes):
        self.ctx = ctx
        self.verifier = verifier
        self.server_public = server_public
        with RecordingReader(ctx.recording) as r:
            self.header = r.header
        self._head: Head | None = None
        self._head_lock = threading.Lock()
        self.cutoffs = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._streams = 0

    @property
    def head(self) -> Head:
        """The session folded from its recording, started by the first call that needs it (a
        session nobody asks spends nothing on it) and given up to 10 s to catch up."""
        with self._head_lock:
            fresh = self._head is None
            if fresh:
                self._head = Head(self.ctx.recording, self.ctx.engine_factory, self.ctx.stop, self.ctx.log).start()
            head = self._head
        if fresh:
            head.caught_up.wait(10.0)
        return head

    def join_head(self, timeout: float) -> None:
        if self._head is not None:
            self._head.join(timeout)

    # -- plumbing ----------------------------------------------------------------------------
    def _auth(self, method: str, raw: bytes, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.requests += 1
        try:
            return self.verifier.verify(method, context.invocation_metadata(), raw)
        except signing.Rejected as r:
            context.abort(getattr(grpc.StatusCode, r.code), r.reason)

    def _unary(self, name: str, req_type: Any, fn: Callable[..., Any]) -> grpc.RpcMethodHandler:
        method = f"/{SERVICE}/{name}"

        def handler(raw: bytes, context: grpc.ServicerContext) -> bytes:
            peer = self._auth(method, raw, context)
            try:
                req = req_type.FromString(raw)
            except Exception:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable {req_type.DESCRIPTOR.name}")
            return fn(req, peer, context).SerializeToString()

        return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=_ident,
                                                   response_serializer=_ident)

    def _stream(self, name: str, kind: str, batch: bool = False) -> grpc.RpcMethodHandler:
        method = f"/{SERVICE}/{name}"

        def handler(raw: bytes, context: grpc.ServicerContext):
            peer = self._auth(method, raw, context)
            try:
                req = cpb.StreamRequest.FromString(raw)
            except Exception:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "undecodable StreamRequest")
            with self._lock:
                if self._streams >= MAX_STREAMS:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"at most {MAX_STREAMS} streams at once")
                self._streams += 1
            try:
                s = streams.Stream(kind, self.ctx.recording, self.ctx.engine_factory,
                                   from_event_id=req.from_event_id, live_only=req.live_only,
                                   server_stop=self.ctx.stop,
                                   on_cutoff=lambda k, p=peer.name: self._cutoff(k, p)).start()
                items = s.batches(context.is_active) if batch else s.items(context.is_active)
                for item in items:
                    if isinstance(item, streams.CutOff):
                        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, item.notice)
                    yield item
            finally:
                with self._lock:
                    self._streams -= 1

        return grpc.unary_stream_rpc_method_handler(handler, request_deserializer=_ident,
                                                    response_serializer=_ident)

    def _cutoff(self, kind: str, peer: str) -> int:
        with self._lock:
            self.cutoffs += 1
            n = self.cutoffs
        self.ctx.log(f"control: {kind} stream to peer {peer} cut off: the client fell behind ({n} so far)")
        return n

    def handler(self) -> grpc.GenericRpcHandler:
        u = self._unary
        return grpc.method_handlers_generic_handler(SERVICE, {
            "GetRuntimeInfo": u("GetRuntimeInfo", cpb.RuntimeInfoRequest, self.get_runtime_info),
            "GetCapabilities": u("GetCapabilities", cpb.CapabilitiesRequest, self.get_capabilities),
            "VerifyCompatibility": u("VerifyCompatibility", cpb.CompatibilityRequest, self.verify_compatibility),
            "ListSessions": u("ListSessions", cpb.ListSessionsRequest, self.list_sessions),
            "GetSession": u("GetSession", cpb.GetSessionRequest, self.get_session),
            "GetFlow": u("GetFlow", cpb.FlowRequest, self.get_flow),
            "GetChain": u("GetChain", cpb.FlowRequest, self.get_chain),
            "ListInterventions": u("ListInterventions", cpb.ListInterventionsRequest, self.list_interventions),
            "RequestDrop": u("RequestDrop", cpb.DropRequest, self.request_drop),
            "StreamEvents": self._stream("StreamEvents", "events"),
            "StreamEventBatches": self._stream("StreamEventBatches", "events", batch=True),
            "StreamFlows": self._stream("StreamFlows", "flows"),
            "StreamReasons": self._stream("StreamReasons", "reasons"),
        })

    # -- negotiation -------------------------------------------------------------------------
    def get_runtime_info(self, req: Any, peer: Any, context: Any) -> cpb.RuntimeInfoReply:
        return cpb.RuntimeInfoReply(runtime=self.header.capabilities.runtime, protocol_version=PROTOCOL_VERSION,
                                    server_public_key=self.server_public, peer_name=peer.name)

    def get_capabilities(self, req: Any, peer: Any, context: Any) -> session_pb2.CapabilityReport:
        return self.header.capabilities

    def verify_compatibility(self, req: cpb.CompatibilityRequest, peer: Any, context: Any) -> cpb.CompatibilityReply:
        rep = self.header.capabilities
        caps = {c.name: c for c in rep.capabilities}
        allow_risky = self.header.session.allow_risky
        out = cpb.CompatibilityReply(verdict=rep.verdict, protocol_version=PROTOCOL_VERSION)
        why = []
        if req.protocol_version and req.protocol_version != PROTOCOL_VERSION:
            why.append(f"protocol version {req.protocol_version} asked, this session speaks {PROTOCOL_VERSION}")
        for name in req.required_capabilities[:256]:
            c = caps.get(name)
            if c is None:
                out.required.add(name=name[:200], state=session_pb2.NOT_SUPPORTED, reason="unknown capability")
                why.append(f"{name[:80]}: unknown")
                continue
            out.required.add().CopyFrom(c)
            if c.state == session_pb2.NOT_SUPPORTED:
                why.append(f"{name}: not supported ({c.reason})")
            elif c.state == session_pb2.SUPPORTED_RISKY and not allow_risky:
                why.append(f"{name}: supported but risky: needs --allow-risky on the local command line")
        out.compatible = not why and rep.verdict != session_pb2.NOT_SUPPORTED
        if rep.verdict == session_pb2.NOT_SUPPORTED:
            why.append(f"session verdict: not supported ({rep.verdict_reason})")
        out.reason = "; ".join(why) or f"compatible ({rep.verdict_reason})"
        return out

    # -- sessions ---------------------------------------------------------------------------
    def _summary(self) -> cpb.SessionSummary:
        s = cpb.SessionSummary(info=self.header.session, recording=self.ctx.recording,
                               control_socket=self.ctx.socket_path, stream_cutoffs=self.cutoffs,
                               rejected_requests=self.verifier.rejected)
        with self.head.lock:
            s.events = self.head.events
            s.ended = self.head.end is not None
        st = self.ctx.stats() if self.ctx.stats is not None else None
        if st is not None:
            s.lost_records = st.lost
            s.observation_complete = st.complete
            s.incomplete_reason = st.incomplete_reason or ""
        return s

    def list_sessions(self, req: Any, peer: Any, context: Any) -> cpb.ListSessionsReply:
        return cpb.ListSessionsReply(sessions=[self._summary()])

    def get_session(self, req: cpb.GetSessionRequest, peer: Any, context: Any) -> cpb.SessionSummary:
        if req.session_id and req.session_id != self.header.session.session_id:
            context.abort(grpc.StatusCode.NOT_FOUND, "this socket serves session "
                          f"{self.header.session.session_id} only")
        return self._summary()

    # -- flows, chains, interventions ----------------------------------------------------------
    def _newest(self, what: str, flow_id: int, context: Any) -> Any:
        with self.head.lock:
            msg = self.head.engine.flow(flow_id) if what == "flow" else self.head.engine.chain(flow_id)
        if msg is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no {'flow' if what == 'flow' else 'reason chain for flow'} {flow_id}")
        return msg

    def get_flow(self, req: cpb.FlowRequest, peer: Any, context: Any) -> model_pb2.FlowSnapshot:
        return self._newest("flow", req.flow_id, context)

    def get_chain(self, req: cpb.FlowRequest, peer: Any, context: Any) -> model_pb2.ReasonChain:
        return self._newest("chain", req.flow_id, context)

    def list_interventions(self, req: Any, peer: Any, context: Any) -> cpb.InterventionList:
        with self.head.lock:
            recs = list(self.head.interventions)
        props = self.ctx.proposals.snapshot() if self.ctx.proposals is not None else []
        return cpb.InterventionList(records=recs, proposals=props)

    def request_drop(self, req: cpb.DropRequest, peer: Any, context: Any) -> cpb.DropProposal:
        info = self.header.session
        if not info.allow_intervention:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "refused: this session was not started with --allow-intervention "
                          "(only the local command line can give it)")
        for c in self.header.capabilities.capabilities:
            if any(c.name.startswith(p) for p in DROP_CAPABILITIES) and \
                    c.state == session_pb2.SUPPORTED_RISKY and not info.allow_risky:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"refused: a drop needs {c.name}, supported but risky here: "
                              "needs --allow-risky (only the local command line can give it)")
        if self.ctx.proposals is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "refused: this session has no operator console to confirm a drop "
                          "(serve from gew-tui or gew shell)")
        with self.head.lock:
            known = self.head.engine.flow(req.flow_id) is not None
        if not known:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no flow {req.flow_id}")
        p = self.ctx.proposals.propose(req.flow_id, peer.name, req.reason)
        if p is None:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many proposals waiting for the operator")
        self.ctx.log(f"control: peer {peer.name} proposes dropping flow {req.flow_id} "
                     f"(proposal {p.proposal_id}); confirm it locally like any drop")
        return p


def public_of(key: Any) -> bytes:
    return keys.raw_public(key.public_key())
