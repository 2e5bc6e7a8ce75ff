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

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--json", action="store_true", help="machine-readable output (the CapabilityReport as JSON)")


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


def render_runtime(info) -> str:
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
    ]
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def render_capabilities(report) -> str:
    rows = [[c.name, STATE_SHORT.get(c.state, "?"), c.reason] for c in report.capabilities]
    return table(rows, ["CAPABILITY", "STATE", "REASON"])


def run(args) -> int:
    from gewtui.kernel.build import capability_report

    report = capability_report()
    if args.json:
        print(report_json(report))
        return 0
    out = sys.stdout
    out.write(render_runtime(report.runtime) + "\n\n")
    out.write(render_capabilities(report) + "\n\n")
    out.write(f"verdict: {STATE_SHORT.get(report.verdict, '?')} — {report.verdict_reason}\n")
    return 0
