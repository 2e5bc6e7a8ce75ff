"""Real programs as lab generators: nginx, wrk, ab, redis-server, redis-benchmark, iperf3 and
curl from Debian, each wrapped in a traffic role (``python -m gewtui.lab.traffic nginx-server
…``) so the lab starts, reports and stops them like its own generators.

A server role writes the program's configuration into a private directory (0700, made with
mkdtemp), starts the program as its child with a parent-death signal (so a killed wrapper
never leaves the program behind), reports ready once the port accepts, and ends the program
when it ends. A client role runs the program again and again until the role's deadline and
counts runs and what the program reports. Standard library only (runs in a fresh interpreter).
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:
    # runs in the child between fork and exec: die with the wrapper, whatever kills it
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: list[str], log_path: str | None = None, **kw: Any) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=_pdeathsig, close_fds=True, **kw)
    finally:
        if log_path:
            out.close()   # type: ignore[union-attr]


def _host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def wait_port(addr: str, port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    """True once addr:port accepts a connection; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def nginx_conf(root: str, bind: str, port: int, backlog: int = 511) -> str:
    """A one-process nginx answering 200 "ok" on bind:port, every path inside ``root``."""
    b = _host(bind) if bind not in ("", "0.0.0.0") else "0.0.0.0"
    if bind == "::":
        b = "[::]"
    temps = "\n".join(f"    {k}_temp_path {root}/{k};" for k in
                      ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temps}
    keepalive_requests 1000000;
    server {{
        listen {b}:{port} backlog={backlog} reuseport;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _serve(r, argv_for, bind: str, port: int, stall_after: float = 0.0) -> None:
    """Run a server program until the role's deadline; ready once it accepts."""
    root = tempfile.mkdtemp(prefix="gewlab-prog-")          # 0700, exclusive
    try:
        argv = argv_for(root)
        p = spawn(argv, os.path.join(root, "out.log"))
        try:
            probe = bind if bind not in ("", "0.0.0.0", "::") else ("::1" if bind == "::" else "127.0.0.1")
            if not wait_port(probe, port, p):
                r.count("start_failed")
                return
            r.count("started")
            r.ready()
            if stall_after > 0:
                # a stalled server (as a long pause would): it stops accepting; its listen
                # queue fills and the kernel counts ListenOverflows
                r.nap(stall_after)
                os.kill(p.pid, signal.SIGSTOP)
                r.count("stalled")
            while r.alive() and p.poll() is None:
                r.nap(0.5)
                r.status()
            if p.poll() is not None:
                r.count("exited")
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def role_nginx_server(r) -> None:
    a = r.args

    def argv(root: str) -> list[str]:
        conf = os.path.join(root, "nginx.conf")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(nginx_conf(root, a.bind, a.port, a.backlog))
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.mkdir(os.path.join(root, k), 0o700)
        return ["nginx", "-p", root, "-c", conf, "-e", os.path.join(root, "error.log")]

    _serve(r, argv, a.bind, a.port, a.pause)


def role_redis_server(r) -> None:
    a = r.args

    def argv(root: str) -> list[str]:
        return ["redis-server", "--port", str(a.port), "--bind", a.bind or "0.0.0.0",
                "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                "--dir", root, "--tcp-backlog", str(a.backlog)]

    _serve(r, argv, a.bind, a.port)


def role_iperf3_server(r) -> None:
    a = r.args
    _serve(r, lambda root: ["iperf3", "-s", "-B", a.bind or "0.0.0.0", "-p", str(a.port)], a.bind, a.port)


# -- clients --------------------------------------------------------------------------------
def run_client(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run one client program to its end; (exit status, output)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=_pdeathsig, close_fds=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return -9, out.decode(errors="replace")
    return p.returncode, out.decode(errors="replace")


def wrk_argv(addr: str, port: int, connections: int, seconds: float) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", f"http://{_host(addr)}:{port}/"]


def ab_argv(addr: str, port: int, requests: int, concurrency: int) -> list[str]:
    # -r: go on after socket errors (a lossy path), -s: per-request timeout
    return ["ab", "-q", "-r", "-s", "5", "-n", str(requests), "-c", str(concurrency),
            f"http://{_host(addr)}:{port}/"]


def parse_wrk(out: str) -> dict[str, int]:
    m = re.search(r"(\d+) requests in", out)
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    d = {"requests": int(m.group(1)) if m else 0}
    if e:
        d.update(connect_errors=int(e.group(1)), timeouts=int(e.group(4)))
    return d


def parse_ab(out: str) -> dict[str, int]:
    m = re.search(r"Complete requests:\s+(\d+)", out)
    f = re.search(r"Failed requests:\s+(\d+)", out)
    return {"requests": int(m.group(1)) if m else 0, "failed": int(f.group(1)) if f else 0}


def _loop(r, argv: list[str], parse, per_run_timeout: float) -> None:
    while r.alive():
        rc, out = run_client(argv, per_run_timeout)
        r.count("runs")
        if rc != 0:
            r.count("failed_runs")
        for k, v in parse(out).items():
            r.count(k, v)
        r.nap(r.args.interval)


def role_wrk_client(r) -> None:
    a = r.args
    _loop(r, wrk_argv(a.connect, a.port, a.connections, 5), parse_wrk, 30)


def role_ab_client(r) -> None:
    a = r.args
    _loop(r, ab_argv(a.connect, a.port, a.size, a.connections), parse_ab, 60)


def role_redis_bench_client(r) -> None:
    a = r.args
    argv = ["redis-benchmark", "-h", a.connect, "-p", str(a.port), "-n", str(a.size), "-c",
            str(a.connections), "-t", "set,get", "-q"]
    _loop(r, argv, lambda out: {}, 120)


def role_iperf3_client(r) -> None:
    a = r.args
    argv = ["iperf3", "-c", a.connect, "-p", str(a.port), "-t", "5", "-J"]
    _loop(r, argv, lambda out: {}, 30)


def role_curl_client(r) -> None:
    a = r.args
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "2", f"http://{_host(a.connect)}:{a.port}/"]

    _loop(r, argv, lambda out: {}, 10)


ROLES = {
    "nginx-server": role_nginx_server, "redis-server": role_redis_server,
    "iperf3-server": role_iperf3_server, "wrk-client": role_wrk_client, "ab-client": role_ab_client,
    "redis-bench-client": role_redis_bench_client, "iperf3-client": role_iperf3_client,
    "curl-client": role_curl_client,
}
