"""``gew runtime info [--json]``: runtime facts and every capability in one of three states.

Loads nothing into the kernel, so it runs without root and reports what this user can see
(a non-root user cannot read tracefs formats: those capabilities say so).
"""
from __future__ import annotations

import json
import sys

EPILOG = """\
examples:
  gew runtime info                  the kernel, each capability in one of three states, the verdict
  gew runtime info --json | jq '.capabilities[] | select(.state != "FULLY_SUPPORTED")'
"""

STATE_SHORT = {1: "not supported", 2: "risky", 3: "fully supported"}


def add_arguments(p, words) -> None:
    import argparse

    from gewtui.cli.tui_cmd import add_override_argument

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--json", action="store_true", help="machine-readable output (the CapabilityReport as JSON)")
    p.add_argument("--templates", metavar="DIR", action="append", default=[],
                   help="also check and list this template directory (as gew-tui --templates would load it)")
    add_override_argument(p)


def template_rows(args) -> list[list[str]]:
    """The template set gew-tui would load with these options: counts and every packaged
    template a user file replaces (loading errors are the usual one line)."""
    from gewtui.errors import UsageError
    from gewtui.model.templates import load_templates

    if args.override_template and not args.templates:
        raise UsageError("--override-template needs --templates DIR holding the replacement")
    ts = load_templates(args.templates, allow_override=args.override_template)
    user = sum(1 for t in ts if not t.source.startswith(str(_packaged_dir())))
    rows = [["templates", f"{len(ts)} ({len(ts) - user} packaged, {user} from --templates)"]]
    rows += [["replaced", n] for n in ts.override_notes()]
    return rows


def _packaged_dir():
    from gewtui.resources import templates_dir

    return templates_dir()


def table(rows: list[list[str]], headers: list[str], max_last: int = 0) -> str:
    """Left-aligned columns; the last column is not padded (it may be long)."""
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers) - 1)]
    lines = []
    for r in [headers] + rows:
        cells = [str(c).ljust(w) for c, w in zip(r[:-1], widths)]
        last = str(r[-1])
        if max_last and len(last) > max_last:
            last = last[:max_last - 1] + "…"
        lines.append("  ".join(cells + [last]).rstrip())
    return "\n".join(lines)


def report_json(report) -> str:
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(report, preserving_proto_field_name=True,
                                                always_print_fields_with_no_presence=True), indent=2)


def _yes(v: bool) -> str:
    return "yes" if v else "no"


def render_runtime(info, extra: list[list[str]] = ()) -> str:
    headers = f"{info.headers_path or 'none'}"
    if info.headers_path:
        headers += f" ({info.headers_release or 'unknown release'}; " + (
            "matches the kernel)" if info.headers_match_kernel else "does not match the kernel)")
    rows = [
        ["tool", f"gew {info.tool_version} (python {info.python})"],
        ["kernel", f"{info.kernel_release} ({info.machine})"],
        ["BTF", "/sys/kernel/btf/vmlinux" if info.btf else "missing"],
        ["bcc", info.bcc_version or "not importable"],
        ["headers", headers],
        ["tracefs", f"mounted at {info.tracefs_path}" if info.tracefs_mounted else "not mounted"],
        ["bpffs", f"mounted at {info.bpffs_path}" if info.bpffs_mounted else "not mounted"],
        ["root", f"{_yes(info.root)} (CAP_BPF {_yes(info.cap_bpf)}, CAP_SYS_ADMIN {_yes(info.cap_sys_admin)})"],
        *extra,
    ]
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def render_capabilities(report) -> str:
    rows = [[c.name, STATE_SHORT.get(c.state, "?"), c.reason] for c in report.capabilities]
    return table(rows, ["CAPABILITY", "STATE", "REASON"])


def run(args) -> int:
    from gewtui.kernel.build import capability_report

    extra = template_rows(args)
    report = capability_report()
    if args.json:
        text = report_json(report)
        d = json.loads(text)
        d["templates"] = {"summary": extra[0][1], "replaced": [r[1] for r in extra[1:]]}
        print(json.dumps(d, indent=2))
        return 0
    out = sys.stdout
    out.write(render_runtime(report.runtime, extra) + "\n\n")
    out.write(render_capabilities(report) + "\n\n")
    out.write(f"verdict: {STATE_SHORT.get(report.verdict, '?')} — {report.verdict_reason}\n")
    return 0
