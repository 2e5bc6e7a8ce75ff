"""Signed requests: what a peer attaches to every call, and the server's check of it.

Place in the pipeline: the reference client (gewtui.control.client) signs; the service
(gewtui.control.service) verifies each call before it decodes the request. The metadata:

    gew-peer      the peer id (fingerprint of its public key, gewtui.control.keys.peer_id)
    gew-ts        the peer's wall clock, Unix nanoseconds
    gew-nonce     32 hex digits, never reused
    gew-sig-bin   Ed25519 signature over signed_message(method, peer, ts, nonce, request)

The signature covers the method name and the request's bytes, and also the peer id,
timestamp and nonce, so none of them can be swapped onto another call. A call is rejected
when the peer is unknown (not paired, or revoked), the signature does not verify, the
timestamp is more than 30 s off this host's clock, or the nonce was seen before; nonces are
remembered for twice the window (older timestamps are refused anyway). Every rejection is
counted and kept (the newest 1,000) with its reason.
"""
from __future__ import annotations

import collections
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gewtui.control import keys

PEER, TS, NONCE, SIG = "gew-peer", "gew-ts", "gew-nonce", "gew-sig-bin"
WINDOW_NS = 30 * 1_000_000_000
_NONCE_RE = re.compile(r"[0-9a-f]{32}")
_PEER_RE = re.compile(r"[0-9a-f]{32}")
MAX_NONCES = 1_000_000
DOMAIN = b"gewyvern-control-v1\x00"


def signed_message(method: str, peer: str, ts: str, nonce: str, body: bytes) -> bytes:
    return b"\x00".join((DOMAIN, method.encode(), peer.encode(), ts.encode(), nonce.encode(), body))


def sign(key: Ed25519PrivateKey, method: str, body: bytes, *, ts_ns: int | None = None,
         nonce: str | None = None) -> list[tuple[str, Any]]:
    """The metadata for one call of ``method`` (full name, ``/gewyvern.v1.Control/X``)."""
    peer = keys.peer_id(keys.raw_public(key.public_key()))
    ts = str(time.time_ns() if ts_ns is None else ts_ns)
    nonce = nonce or os.urandom(16).hex()
    sig = key.sign(signed_message(method, peer, ts, nonce, body))
    return [(PEER, peer), (TS, ts), (NONCE, nonce), (SIG, sig)]


@dataclass(frozen=True)
class Rejection:
    unix_ns: int
    method: str
    peer: str
    reason: str
    code: str          # the gRPC status name it was answered with


class Rejected(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Verifier:
    """Checks calls against the paired peers (``lookup(peer_id) -> Peer | None``)."""

    def __init__(self, lookup: Callable[[str], Any], *, clock: Callable[[], int] = time.time_ns,
                 log: Callable[[str], None] | None = None):
        self._lookup = lookup
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()
        self._nonces: dict[str, int] = {}
        self._order: collections.deque[tuple[int, str]] = collections.deque()
        self.rejected = 0
        self.rejections: collections.deque[Rejection] = collections.deque(maxlen=1000)

    def verify(self, method: str, metadata: Any, body: bytes) -> Any:
        """The Peer that signed this call, or Rejected (recorded)."""
        md: dict[str, Any] = {}
        for k, v in metadata or ():
            if k in (PEER, TS, NONCE, SIG):
                if k in md:
                    return self._reject(method, "", "UNAUTHENTICATED", f"{k} given twice")
                md[k] = v
        peer_id = md.get(PEER)
        if not isinstance(peer_id, str) or not _PEER_RE.fullmatch(peer_id):
            return self._reject(method, "", "UNAUTHENTICATED", "no peer id: unpaired client")
        missing = [k for k in (TS, NONCE, SIG) if k not in md]
        if missing:
            return self._reject(method, peer_id, "UNAUTHENTICATED", "unsigned request (no " + ", ".join(missing) + ")")
        peer = self._lookup(peer_id)
        if peer is None:
            return self._reject(method, peer_id, "PERMISSION_DENIED", f"unknown peer {peer_id}: not paired")
        ts, nonce, sig = md[TS], md[NONCE], md[SIG]
        if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
            return self._reject(method, peer.name, "UNAUTHENTICATED", "malformed nonce")
        try:
            ts_ns = int(ts) if isinstance(ts, str) and ts.isdigit() and len(ts) < 21 else None
        except ValueError:
            ts_ns = None
        if ts_ns is None or not isinstance(sig, bytes):
            return self._reject(method, peer.name, "UNAUTHENTICATED", "malformed timestamp or signature")
        try:
            peer.key.verify(sig, signed_message(method, peer_id, ts, nonce, body))
        except InvalidSignature:
            return self._reject(method, peer.name, "UNAUTHENTICATED", "bad signature")
        now = self._clock()
        if abs(now - ts_ns) > WINDOW_NS:
            return self._reject(method, peer.name, "UNAUTHENTICATED",
                                f"timestamp {abs(now - ts_ns) / 1e9:.0f} s off this host's clock (limit 30 s)")
        with self._lock:
            self._forget(now)
            if nonce in self._nonces:
                replay = True
            else:
                replay = False
                if len(self._nonces) >= MAX_NONCES:
                    return self._reject(method, peer.name, "RESOURCE_EXHAUSTED", "too many requests in 60 s")
                self._nonces[nonce] = now
                self._order.append((now, nonce))
        if replay:
            return self._reject(method, peer.name, "UNAUTHENTICATED", "replayed nonce")
        return peer

    def _forget(self, now: int) -> None:
        while self._order and self._order[0][0] < now - 2 * WINDOW_NS:
            _, n = self._order.popleft()
            self._nonces.pop(n, None)

    def _reject(self, method: str, peer: str, code: str, reason: str) -> Any:
        r = Rejection(time.time_ns(), method, peer, reason, code)
        with self._lock:
            self.rejected += 1
            self.rejections.append(r)
        if self._log is not None:
            self._log(f"control: refused {method.rsplit('/', 1)[-1]} from {peer or 'an unpaired client'}: {reason}")
        raise Rejected(code, reason)
