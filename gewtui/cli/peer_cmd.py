"""`gew peer keygen|call|stream`: the reference peer, from a shell.

What a fleet system does, so operators and scripts can use a serving session's control
plane: make a key pair, call a method, follow a stream. A thin shell over
gewtui.control.client; needs no root (only read access to the socket, which is root's).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time

EPILOG = """\
examples:
  gew peer keygen --out ~/fleet --name fleet1
  gew peer call /run/gewyvern/instances/default/sessions/ID/control.sock GetRuntimeInfo --key ~/fleet/fleet1.key
  gew peer call SOCKET VerifyCompatibility --key K --request '{"required_capabilities": ["ringbuf"]}' --json
  gew peer call SOCKET RequestDrop --key K --request '{"flow_id": 17, "reason": "storm"}'
  gew peer stream SOCKET flows --key K --json        from the session's start, then live
  gew peer stream SOCKET events --key K --live --count 1000

methods: GetRuntimeInfo GetCapabilities VerifyCompatibility ListSessions GetSession GetFlow
         GetChain ListInterventions RequestDrop (RequestDrop only proposes: the operator confirms)
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    verb = words[-1]
    if verb == "keygen":
        p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/NAME.key (0600) and DIR/NAME.pub")
        p.add_argument("--name", metavar="NAME", help="the peer's name (default: this host's name)")
        return
    p.add_argument("socket", metavar="SOCKET", help="the session's control.sock, or HOST:PORT")
    if verb == "call":
        p.add_argument("method", metavar="METHOD")
        p.add_argument("--request", metavar="JSON", default="{}", help="the request message as JSON")
    else:
        p.add_argument("what", choices=("events", "flows", "reasons"))
        p.add_argument("--from", dest="from_event", type=int, default=0, metavar="EVENT_ID",
                       help="start at this event id (default: the session's first event)")
        p.add_argument("--live", action="store_true", help="start at the newest event instead")
        p.add_argument("--count", type=int, metavar="N", help="stop after N messages")
        p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the peer's private key (from gew peer keygen)")
    p.add_argument("--tls-ca", metavar="PEM", help="CA certificate for a TLS HOST:PORT")
    p.add_argument("--json", action="store_true", help="JSON output (streams: one object a line)")


def _json(msg) -> str:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def run(args: argparse.Namespace) -> int:
    verb = args._words[-1]
    if verb == "keygen":
        return _keygen(args)
    from gewtui.control.client import PeerClient, load_key
    from gewtui.errors import GewError

    tls = None
    if args.tls_ca:
        try:
            with open(args.tls_ca, "rb") as f:
                tls = f.read(1 << 20)
        except OSError as e:
            raise GewError(f"{args.tls_ca}: {e.strerror}", 66) from None
    with PeerClient(args.socket, load_key(args.key), tls_ca=tls) as c:
        return _call(c, args) if verb == "call" else _stream(c, args)


def _call(c, args) -> int:
    from google.protobuf import json_format, text_format

    from gewtui.control.client import UNARY
    from gewtui.errors import GewError

    if args.method not in UNARY:
        raise GewError(f"unknown method {ascii(args.method)[:60]}; one of: {', '.join(UNARY)}", 64)
    req = UNARY[args.method][0]()
    try:
        json_format.Parse(args.request, req)
    except json_format.ParseError as e:
        raise GewError(f"--request: {str(e).splitlines()[0][:200]}", 64) from None
    reply = c.call(args.method, req)
    print(_json(reply) if args.json else text_format.MessageToString(reply).rstrip() or "(empty reply)")
    return 0


def _stream(c, args) -> int:
    from gewtui.control.client import CallFailed

    n = 0
    end = time.monotonic() + args.seconds if args.seconds else None
    try:
        for msg in c.stream(args.what, from_event_id=args.from_event, live_only=args.live,
                            timeout=args.seconds):
            n += 1
            print(_json(msg) if args.json else _line(args.what, msg))
            if (args.count and n >= args.count) or (end and time.monotonic() >= end):
                break
    except CallFailed as e:
        if not (args.seconds and e.status == "DEADLINE_EXCEEDED"):    # --seconds ran out: done
            raise
    sys.stdout.flush()
    return 0


def _line(what: str, m) -> str:
    if what == "events":
        return f"#{m.id} {m.WhichOneof('body')}"
    if what == "flows":
        return f"flow {m.flow_id} {m.key} phase={m.phase} events={m.counters.events}"
    return f"flow {m.flow_id} chain as of #{m.at_event_id}: {m.root.severity} {m.root.text[:120]}"


def _keygen(args) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gewtui.control import keys
    from gewtui.errors import GewError

    name = args.name or re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "peer"
    if not keys.NAME_RE.fullmatch(name):
        raise GewError(f"bad --name {ascii(name)[:70]} (letters, digits, _ and -, at most 64)", 64)
    os.makedirs(args.out, mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    paths = [os.path.join(args.out, f"{name}.{ext}") for ext in ("key", "pub")]
    try:
        dfd = os.open(args.out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise GewError(f"{args.out}: {e.strerror}", 73) from None
    try:
        for fname, data, mode in ((f"{name}.key", keys.private_pem(key), 0o600),
                                  (f"{name}.pub", keys.public_line(key.public_key(), name).encode(), 0o644)):
            try:
                fd = os.open(fname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
            except FileExistsError:
                raise GewError(f"{os.path.join(args.out, fname)} exists; not overwriting a key", 73) from None
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    finally:
        os.close(dfd)
    print(json.dumps({"key": paths[0], "pub": paths[1], "name": name}) if getattr(args, "json", False)
          else f"wrote {paths[0]} and {paths[1]}")
    return 0
