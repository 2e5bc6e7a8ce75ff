"""Regenerate gewtui/pb/ from proto/ with the pinned protoc (grpcio-tools).

protoc names imports after the .proto path (``from gewyvern.v1 import events_pb2``);
we rewrite them to the package (``from gewtui.pb import events_pb2``) so the generated
code needs no top-level ``gewyvern`` package. Files that declare a ``service`` also get
gRPC stubs (``*_pb2_grpc.py``, the control plane's). ``--check`` compares instead of writing.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "gewtui" / "pb"
SOURCES = sorted((PROTO_DIR / "gewyvern" / "v1").glob("*.proto"))
_IMPORT = re.compile(r"^from gewyvern\.v1 import (\w+) as", re.M)
_SERVICE = re.compile(r"^service \w+", re.M)


def generate(dest: Path) -> list[Path]:
    from grpc_tools import protoc  # pinned in pyproject [dev]; only the generator needs it

    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={tmp}", f"--pyi_out={tmp}"]
        args += [str(p.relative_to(PROTO_DIR)) for p in SOURCES]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        services = [str(p.relative_to(PROTO_DIR)) for p in SOURCES if _SERVICE.search(p.read_text())]
        if services and protoc.main(["protoc", f"-I{PROTO_DIR}", f"--grpc_python_out={tmp}"] + services) != 0:
            raise SystemExit("protoc (grpc) failed")
        written = []
        for f in sorted((Path(tmp) / "gewyvern" / "v1").iterdir()):
            text = _IMPORT.sub(r"from gewtui.pb import \1 as", f.read_text())
            out = dest / f.name
            out.write_text(text)
            written.append(out)
        return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if gewtui/pb differs from proto/")
    ns = ap.parse_args()
    if not ns.check:
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        drift = [f.name for f in fresh if not (OUT_DIR / f.name).exists()
                 or (OUT_DIR / f.name).read_text() != f.read_text()]
    if drift:
        print("generated code drifted from proto/: " + ", ".join(drift) + " (run make proto)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
