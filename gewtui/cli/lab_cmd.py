"""`gew lab up|down|list`: the network-namespace lab from the command line (gewtui.lab)."""
from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  gew lab list                      the scenarios and what each one produces
  gew lab up refused                bring it up; prints the namespaces and the scope to use
  gew session apply --scope netns=gewlab-client --duration 10
  gew lab down                      remove it (also after a crash)
"""


def add_arguments(p: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    verb = words[-1]
    if verb == "up":
        p.add_argument("scenario", metavar="SCENARIO", help="see `gew lab list`")
        p.add_argument("--ipv6", action="store_true", help="the IPv6 variant (same as SCENARIO6)")
        p.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                       help="generators stop by themselves after S seconds (default 600)")
    if verb in ("up", "down"):
        p.add_argument("--name", default="default", metavar="NAME",
                       help="lab name, for several labs at once (namespaces gewlab-NAME-*)")
    if verb == "down":
        p.add_argument("--all", action="store_true", help="take down every lab in the state file")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    verb = args._words[-1]
    if verb == "list":
        return _list(args)
    from gewtui.runtime.privileges import require_root

    require_root(f"gew lab {verb}")
    return _up(args) if verb == "up" else _down(args)


def _list(args: argparse.Namespace) -> int:
    from gewtui.lab import SCENARIOS, read_state

    labs = read_state()["labs"]
    if args.json:
        print(json.dumps({"scenarios": [{"name": s.name, "summary": s.summary, "shows": s.shows,
                                         "ipv6": s.ipv6, "scope_roles": list(s.scope_roles)}
                                        for s in SCENARIOS.values()],
                          "up": {k: v.get("scenario") for k, v in labs.items()}}, indent=1))
        return 0
    width = max(len(n) for n in SCENARIOS)
    for s in SCENARIOS.values():
        if s.ipv6:
            continue
        print(f"{s.name:<{width}}  {s.summary}\n{'':<{width}}  shows: {s.shows}")
    print(f"\nIPv6 variants: {' '.join(n for n, s in SCENARIOS.items() if s.ipv6)} (or --ipv6)")
    for k, v in sorted(labs.items()):
        print(f"up: lab {k} ({v.get('scenario')}): {' '.join(v.get('namespaces', []))}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from gewtui.lab import Lab

    name = args.scenario + ("6" if args.ipv6 and not args.scenario.endswith("6") else "")
    lab = Lab(name, name=args.name, max_seconds=args.max_seconds).up()
    scope = " ".join(f"--scope {s}" for s in lab.scope_args)
    if args.json:
        print(json.dumps({"lab": args.name, "scenario": name, "client_netns": lab.client_netns,
                          "server_netns": lab.server_netns, "server_addr": lab.server_addr, "port": lab.port,
                          "scope_args": lab.scope_args, "up_seconds": round(lab.up_seconds, 3)}))
        return 0
    print(f"lab {args.name}: {name} is up ({lab.scenario.summary})")
    print(f"  namespaces: {lab.client_netns} (client)  {lab.server_netns} (server {lab.server_addr} port {lab.port})")
    print(f"  expect:     {lab.scenario.shows}")
    print(f"  observe:    gew session apply {scope} --duration 10")
    print(f"  remove:     gew lab down{'' if args.name == 'default' else ' --name ' + args.name}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from gewtui.lab import down, down_all

    did = down_all() if args.all else down(args.name)
    if args.json:
        print(json.dumps({"removed": did}))
    elif not did:
        print("no lab is up" if args.all else f"lab {args.name} is not up")
    else:
        for line in did:
            print(line)
    return 0
