"""The control socket's lifetime: opened after the session attached, gone when it ends.

Place in the pipeline: the CLI (``gew session apply --serve``, ``gew-tui``/``gew shell
--serve``) starts one ``ControlServer`` beside its live session and closes it before the
session closes, on every exit path. The socket is
``/run/gewyvern/instances/<id>/sessions/<sid>/control.sock``, inside the session's run
directory (root-owned 0700, made with the manifest), chmod 0600 right after the bind; the
orphan cleanup (``gew session gc``, gewtui.kernel.bpffs) removes it with the manifest when
the owner was SIGKILLed. There is no daemon: no session, no socket.

``--serve-tcp HOST:PORT`` adds a TCP port: with TLS when /etc/gewyvern/tls/cert.pem and
key.pem exist, plain only on a loopback address; a non-loopback address without a
certificate is refused before anything is opened. ``--otlp ENDPOINT`` hands the verdicts
and flow counters to an OpenTelemetry collector every 5 s and once more at the end.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc

from gewtui.control import privdir, signing
from gewtui.control.pairing import PeerStore
from gewtui.control.service import MAX_STREAMS, ControlService, ServeContext, public_of
from gewtui.errors import EX_NOPERM, GewError, UsageError

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 64 * 1024


def parse_tcp(text: str) -> tuple[str, int, bool]:
    """(host, port, loopback) of HOST:PORT or [V6]:PORT; literal addresses or localhost."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--serve-tcp {ascii(text)[:60]}: expected HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        return "127.0.0.1", int(port), True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--serve-tcp {ascii(text)[:60]}: give an IP address (or localhost)") from None
    return str(addr), int(port), addr.is_loopback


def _tls(store: PeerStore) -> grpc.ServerCredentials | None:
    fd = privdir.open_private_dir(store.root, create=False)
    try:
        try:
            tfd = privdir.open_subdir(fd, "tls", store.root, create=False)
        except FileNotFoundError:
            return None
        try:
            cert = privdir.read_private(tfd, "cert.pem", f"{store.root}/tls")
            key = privdir.read_private(tfd, "key.pem", f"{store.root}/tls")
        except FileNotFoundError:
            return None
        finally:
            os.close(tfd)
    finally:
        os.close(fd)
    return grpc.ssl_server_credentials([(key, cert)])


class ControlServer:
    def __init__(self, ctx: ServeContext, run_dir: str, *, tcp: str | None = None,
                 store: PeerStore | None = None, otlp: str | None = None, otlp_every_s: float = 5.0):
        self.ctx = ctx
        self.path = os.path.join(run_dir, SOCKET_NAME)
        ctx.socket_path = self.path
        self.tcp = tcp
        self.tcp_address = ""
        self.store = store or PeerStore()
        self._server: grpc.Server | None = None
        self.service: ControlService | None = None
        self.otlp = otlp
        self.otlp_every_s = otlp_every_s
        self._otlp_thread: threading.Thread | None = None

    def start(self) -> "ControlServer":
        tcp = parse_tcp(self.tcp) if self.tcp else None
        key = self.store.server_key()          # checks /etc/gewyvern before anything listens
        creds = _tls(self.store) if tcp else None
        if tcp and not tcp[2] and creds is None:
            raise GewError(f"--serve-tcp {self.tcp}: a non-loopback address needs TLS; put cert.pem and "
                           f"key.pem (root-only) in {self.store.root}/tls/", EX_NOPERM)
        if os.path.lexists(self.path):
            raise GewError(f"{self.path} exists already; refusing to serve over it", EX_NOPERM)
        verifier = signing.Verifier(self.store.lookup, log=self.ctx.log)
        self.service = ControlService(self.ctx, verifier, public_of(key))
        server = grpc.server(ThreadPoolExecutor(max_workers=MAX_STREAMS + 4, thread_name_prefix="gew-control"),
                             handlers=[self.service.handler()],
                             options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                      ("grpc.so_reuseport", 0)])
        self._server = server
        try:
            server.add_insecure_port(f"unix:{self.path}")
            os.chmod(self.path, 0o600)       # the run directory (0700) kept it private until now
            if tcp:
                addr = f"[{tcp[0]}]:{tcp[1]}" if ":" in tcp[0] else f"{tcp[0]}:{tcp[1]}"
                bound = (server.add_secure_port(addr, creds) if creds is not None
                         else server.add_insecure_port(addr))
                if not bound:
                    raise GewError(f"--serve-tcp {self.tcp}: cannot bind", EX_NOPERM)
                self.tcp_address = f"{addr}" + (" (TLS)" if creds is not None else " (loopback, no TLS)")
            server.start()
            if self.otlp:
                self._start_otlp()
        except BaseException as e:
            self.close()
            if isinstance(e, RuntimeError):
                raise GewError(f"control socket: {e}", EX_NOPERM) from None
            raise
        return self

    def close(self) -> None:
        """Stop answering, end every stream, remove the socket. Idempotent."""
        self.ctx.stop.set()
        if self.ctx.proposals is not None:
            self.ctx.proposals.withdraw_all()
        if self._server is not None:
            self._server.stop(grace=0.5).wait(2.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._otlp_thread is not None:
            self._otlp_thread.join(15.0)
        if self.service is not None:
            self.service.join_head(1.0)

    # -- the OTLP hand-off of a serving session ------------------------------------------------
    def _start_otlp(self) -> None:
        from gewtui.control.otlp import OtlpSink

        assert self.service is not None and self.otlp
        sink = OtlpSink(self.otlp, self.service.header.session.session_id)
        self._otlp_thread = threading.Thread(target=self._otlp_loop, args=(sink,), name="gew-control-otlp",
                                             daemon=True)
        self._otlp_thread.start()

    def _otlp_loop(self, sink: Any) -> None:
        """Every few seconds, and once more at the end: the verdicts that are new or changed
        and the counters' increments. A collector that is down costs a line, never capture."""
        head = self.service.head
        failing = False
        try:
            while True:
                stopping = self.ctx.stop.wait(self.otlp_every_s)
                if stopping:
                    head.join(2.0)          # its last fold, then the final export
                with head.lock:
                    flows = {f.flow_id: f for f in head.engine.flows()}
                    chains = [c for c in (head.engine.chain(fid) for fid in flows) if c is not None]
                sink.add(chains, flows)
                try:
                    sink.flush()
                    if failing:
                        self.ctx.log(f"control: OTLP export to {self.otlp} works again")
                    failing = False
                except GewError as e:
                    if not failing:
                        self.ctx.log(f"control: {e.message} (retrying every {self.otlp_every_s:g} s)")
                    failing = True
                if stopping:
                    return
        finally:
            sink.close()


def serve(live: Any, recording: str, engine_factory: Callable[[], Any], *, tcp: str | None,
          proposals: Any = None, log: Callable[[str], None], otlp: str | None = None) -> ControlServer:
    """A ControlServer for a LiveSession that is open (its run directory exists)."""
    run_dir = live.instance.session_run(live.session_id)
    ctx = ServeContext(recording=recording, engine_factory=engine_factory,
                       stats=lambda: live.stats, proposals=proposals, log=log)
    return ControlServer(ctx, run_dir, tcp=tcp, otlp=otlp).start()
