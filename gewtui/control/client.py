"""The reference peer: what a fleet system does to talk to a serving session.

Place in the pipeline: outside the session, on the peer's side (``gew peer``, the tests, the
bench). It signs every call with the peer's Ed25519 key (gewtui.control.signing) over the
exact bytes it sends, so requests go out pre-serialized.

``target`` is a socket path (``/run/gewyvern/…/control.sock``) or ``HOST:PORT``, plain or,
with ``tls_ca``, TLS.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import grpc

from gewtui.control import keys, signing
from gewtui.errors import EX_DATAERR, EX_NOINPUT, EX_NOPERM, EX_UNAVAILABLE, EX_USAGE, GewError
from gewtui.pb import control_pb2 as cpb
from gewtui.pb import events_pb2, model_pb2, session_pb2

SERVICE = "gewyvern.v1.Control"
UNARY: dict[str, tuple[Any, Any]] = {
    "GetRuntimeInfo": (cpb.RuntimeInfoRequest, cpb.RuntimeInfoReply),
    "GetCapabilities": (cpb.CapabilitiesRequest, session_pb2.CapabilityReport),
    "VerifyCompatibility": (cpb.CompatibilityRequest, cpb.CompatibilityReply),
    "ListSessions": (cpb.ListSessionsRequest, cpb.ListSessionsReply),
    "GetSession": (cpb.GetSessionRequest, cpb.SessionSummary),
    "GetFlow": (cpb.FlowRequest, model_pb2.FlowSnapshot),
    "GetChain": (cpb.FlowRequest, model_pb2.ReasonChain),
    "ListInterventions": (cpb.ListInterventionsRequest, cpb.InterventionList),
    "RequestDrop": (cpb.DropRequest, cpb.DropProposal),
}
STREAMS: dict[str, tuple[str, Any]] = {
    "events": ("StreamEventBatches", cpb.EventBatch),     # flattened: one Event at a time
    "events-plain": ("StreamEvents", events_pb2.Event),
    "flows": ("StreamFlows", model_pb2.FlowSnapshot),
    "reasons": ("StreamReasons", model_pb2.ReasonChain),
}
_EXIT = {"UNAUTHENTICATED": EX_NOPERM, "PERMISSION_DENIED": EX_NOPERM, "FAILED_PRECONDITION": EX_NOPERM,
         "NOT_FOUND": EX_NOINPUT, "INVALID_ARGUMENT": EX_USAGE, "UNAVAILABLE": EX_UNAVAILABLE,
         "RESOURCE_EXHAUSTED": EX_UNAVAILABLE}


class CallFailed(GewError):
    def __init__(self, method: str, code: str, details: str):
        super().__init__(f"{method}: {code}: {details}", _EXIT.get(code, EX_UNAVAILABLE))
        self.status = code
        self.details = details


def _ident(b: bytes) -> bytes:
    return b


def load_key(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(16 * 1024 + 1)
    except OSError as e:
        raise GewError(f"{path}: cannot read the key: {e.strerror}", EX_NOINPUT) from None
    if len(data) > 16 * 1024:
        raise GewError(f"{path}: too large for a key file", EX_DATAERR)
    return keys.parse_private(data, path)


def channel_for(target: str, tls_ca: bytes | None = None) -> grpc.Channel:
    opts = [("grpc.enable_retries", 0)]
    if target.startswith("/") or target.startswith("unix:"):
        path = target[5:] if target.startswith("unix:") else target
        if not os.path.exists(path):
            raise GewError(f"{path}: no such socket (is the session serving?)", EX_NOINPUT)
        return grpc.insecure_channel(f"unix:{path}", options=opts)
    if tls_ca is not None:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=tls_ca), options=opts)
    return grpc.insecure_channel(target, options=opts)


class PeerClient:
    def __init__(self, target: str, key: Any, *, tls_ca: bytes | None = None):
        self.key = key
        self.peer_id = keys.peer_id(keys.raw_public(key.public_key()))
        self.channel = channel_for(target, tls_ca)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PeerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call_raw(self, method: str, body: bytes, reply_type: Any, *, metadata: list | None = None,
                 timeout: float = 10.0) -> Any:
        """One unary call with the given bytes; ``metadata`` overrides the signature (tests)."""
        full = f"/{SERVICE}/{method}"
        md = metadata if metadata is not None else signing.sign(self.key, full, body)
        fn = self.channel.unary_unary(full, request_serializer=_ident, response_deserializer=reply_type.FromString)
        try:
            return fn(body, metadata=md, timeout=timeout)
        except grpc.RpcError as e:
            raise CallFailed(method, e.code().name, e.details() or "") from None

    def call(self, method: str, request: Any = None, *, timeout: float = 10.0) -> Any:
        if method not in UNARY:
            raise GewError(f"unknown method {ascii(method)[:60]}; one of: {', '.join(UNARY)}", EX_USAGE)
        req_type, reply_type = UNARY[method]
        body = (request if request is not None else req_type()).SerializeToString()
        return self.call_raw(method, body, reply_type, timeout=timeout)

    def stream(self, kind: str, *, from_event_id: int = 0, live_only: bool = False,
               timeout: float | None = None) -> Iterator[Any]:
        """The messages of a stream; raises CallFailed when the server ends it with an error
        (a cut-off notice is RESOURCE_EXHAUSTED)."""
        if kind not in STREAMS:
            raise GewError(f"unknown stream {ascii(kind)[:40]}; one of: {', '.join(STREAMS)}", EX_USAGE)
        method, msg = STREAMS[kind]
        full = f"/{SERVICE}/{method}"
        body = cpb.StreamRequest(from_event_id=from_event_id, live_only=live_only).SerializeToString()
        fn = self.channel.unary_stream(full, request_serializer=_ident, response_deserializer=msg.FromString)
        call = fn(body, metadata=signing.sign(self.key, full, body), timeout=timeout)
        try:
            if msg is cpb.EventBatch:
                for b in call:
                    yield from b.events
            else:
                yield from call
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise CallFailed(method, e.code().name, e.details() or "") from None
        finally:
            call.cancel()
