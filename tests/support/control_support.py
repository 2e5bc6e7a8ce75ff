"""Helpers for the control-plane tests: a peer key pair paired in a private /etc/gewyvern,
a local OTLP receiver (the collector's gRPC LogsService and MetricsService, served by
grpcio on loopback), and a session started with --serve as its own process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from gewtui.control.client import PeerClient, load_key
from gewtui.control.pairing import PeerStore
from tests.support.waiting import wait_for  # noqa: F401  (the control tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
GEW = [sys.executable, "-m", "gewtui.cli.main"]
GOLDEN = ROOT / "tests" / "data" / "golden" / "congested.gewrec"


class OtlpReceiver(logs_service_pb2_grpc.LogsServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """What a collector's OTLP/gRPC receiver does, minus everything after the receive."""

    def __init__(self) -> None:
        self.logs: list = []          # LogRecord protobufs
        self.metrics: list = []       # Metric protobufs
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"

    def Export(self, request, context):        # both services name their method Export
        with self.lock:
            if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                for rl in request.resource_logs:
                    for sl in rl.scope_logs:
                        self.logs.extend(sl.log_records)
                return logs_service_pb2.ExportLogsServiceResponse()
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    self.metrics.extend(sm.metrics)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    def __enter__(self) -> "OtlpReceiver":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(0).wait()


def attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind)
    return out


def make_peer(tmp: Path, name: str = "fleet1") -> Path:
    """A peer key pair made by `gew peer keygen`; returns the private key's path."""
    out = tmp / "peer"
    subprocess.run(GEW + ["peer", "keygen", "--out", str(out), "--name", name], check=True,
                   capture_output=True, text=True)
    return out / f"{name}.key"


def pair(etc: Path, key: Path) -> None:
    env = dict(os.environ, GEWYVERN_ETC=str(etc))
    tok = subprocess.run(GEW + ["pair", "new", "--json"], env=env, check=True, capture_output=True, text=True)
    import json

    token = json.loads(tok.stdout)["token"]
    subprocess.run(GEW + ["pair", "accept", token, "--peer-key", str(key.with_suffix(".pub"))], env=env,
                   check=True, capture_output=True, text=True)


def client(sock: str, key: Path) -> PeerClient:
    return PeerClient(sock, load_key(str(key)))


class ServingSession:
    """`gew session apply --scope netns=NS --serve` as a child process."""

    def __init__(self, etc: Path, netns: str, record: Path, *extra: str, duration: float = 60,
                 instance: str = "default"):
        self.etc = etc
        self.record = record
        self.err = record.with_suffix(".stderr")
        env = dict(os.environ, GEWYVERN_ETC=str(etc), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(GEW + ["session", "apply", "--scope", f"netns={netns}", "--serve",
                                            "--record", str(record), "--duration", str(duration),
                                            "--instance", instance, *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))
        self.socket = ""

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_serving(self, timeout: float = 60) -> str:
        def found():
            for line in self.stderr().splitlines():
                if "serving the control plane on " in line:
                    return line.split(" on ", 1)[1].split()[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"session exited {self.proc.returncode}: {self.stderr()[-2000:]}")
            return ""

        self.socket = wait_for(found, timeout, 0.2)
        assert self.socket, f"no control socket announced: {self.stderr()[-2000:]}"
        return self.socket

    def stop(self, sig=None, timeout: float = 30) -> int:
        import signal as _s

        if self.proc.poll() is None:
            self.proc.send_signal(sig or _s.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class Redis:
    """redis-server in one namespace, redis-benchmark from the other: real request traffic."""

    PORT = 6391

    def __init__(self, pair, tmp: Path):
        self.pair = pair
        self.tmp = tmp
        self.server = subprocess.Popen(["ip", "netns", "exec", pair.b, "redis-server", "--bind", pair.b_addr,
                                        "--port", str(self.PORT), "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                        "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = wait_for(lambda: subprocess.run(["ip", "netns", "exec", pair.a, "redis-cli", "-h", pair.b_addr,
                                              "-p", str(self.PORT), "ping"], capture_output=True,
                                             text=True).stdout.strip() == "PONG", 10, 0.2)
        assert ok, "redis-server did not come up"

    def bench(self, requests: int = 2000, clients: int = 4) -> None:
        subprocess.run(["ip", "netns", "exec", self.pair.a, "redis-benchmark", "-h", self.pair.b_addr,
                        "-p", str(self.PORT), "-n", str(requests), "-c", str(clients), "-q", "-t", "ping"],
                       check=True, capture_output=True, timeout=120)

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)


def tiny_recording(tmp: Path) -> Path:
    """A copy of a recorded lab session (congested: a queue-drops verdict)."""
    dst = tmp / "congested.gewrec"
    shutil.copyfile(GOLDEN, dst)
    return dst
