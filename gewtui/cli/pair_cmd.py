"""`gew pair new|accept|list|revoke`: pairing peers with this host's control plane.

A thin shell over gewtui.control.pairing; everything lives root-only under /etc/gewyvern.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

EPILOG = """\
examples:
  gew pair new --ttl 10m                       a one-time token for the peer's operator
  gew peer keygen --out /root/fleet --name fleet1      (on the peer: its key pair)
  gew pair accept TOKEN --peer-key /root/fleet/fleet1.pub
  gew pair list
  gew pair revoke fleet1                       takes effect on the peer's next request
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    verb = words[-1]
    if verb == "new":
        p.add_argument("--ttl", default="10m", metavar="TIME", help="how long the token stays valid (default 10m)")
    elif verb == "accept":
        p.add_argument("token", metavar="TOKEN")
        p.add_argument("--peer-key", required=True, metavar="FILE", help="the peer's public key (gew-ed25519 line)")
        p.add_argument("--name", metavar="NAME", default="", help="the peer's name (default: the one in its key line)")
    elif verb == "revoke":
        p.add_argument("name", metavar="NAME")
    if verb in ("new", "accept", "list", "revoke"):
        p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gewtui.control.pairing import PeerStore, parse_ttl
    from gewtui.errors import EX_NOINPUT, GewError
    from gewtui.runtime.privileges import require_root

    verb = args._words[-1]
    require_root(f"gew pair {verb}")
    store = PeerStore()
    if verb == "new":
        ttl = parse_ttl(args.ttl)
        store.server_key()            # gew's own key pair, made once
        token, expires = store.new_token(ttl)
        if args.json:
            print(json.dumps({"token": token, "expires_unix": int(expires)}))
        else:
            print(token)
            print(f"gew: one-time pairing token, valid until {time.strftime('%H:%M:%S', time.localtime(expires))}",
                  file=sys.stderr)
        return 0
    if verb == "accept":
        try:
            with open(args.peer_key, "rb") as f:
                text = f.read(4097)
        except OSError as e:
            raise GewError(f"{args.peer_key}: {e.strerror}", EX_NOINPUT) from None
        if len(text) > 4096:
            raise GewError(f"{args.peer_key}: too large for a public key line", 65)
        peer = store.accept(args.token, text.decode("ascii", "replace"), args.name, args.peer_key)
        from gewtui.control import keys

        server_pub = keys.public_line(store.server_key().public_key(), "gew").strip()
        if args.json:
            print(json.dumps({"name": peer.name, "peer_id": peer.peer_id, "server_key": server_pub}))
        else:
            print(f"paired {peer.name} (peer id {peer.peer_id}); this host's key: {server_pub}")
        return 0
    if verb == "list":
        peers = store.peers()
        if args.json:
            print(json.dumps({"peers": [{"name": p.name, "peer_id": p.peer_id, "paired_unix": p.paired_unix}
                                        for p in peers]}))
        elif not peers:
            print("no paired peers")
        else:
            print(f"{'NAME':<24} {'PEER ID':<33} PAIRED")
            for p in peers:
                print(f"{p.name:<24} {p.peer_id:<33} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(p.paired_unix))}")
        return 0
    store.revoke(args.name)
    print(json.dumps({"revoked": args.name}) if args.json else f"revoked {args.name}")
    return 0
