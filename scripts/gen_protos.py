# SPDX-License-Identifier: Apache-2.0
"""Regenerate the sample's gRPC stubs from ``protos/genkit_sample.proto``.

Runs ``python -m grpc_tools.protoc`` (Python, ``.pyi`` and gRPC outputs) into an output
directory, then rewrites the gRPC module's top-level ``import genkit_sample_pb2`` into a
package-relative import so the stubs work inside ``endpoints_hello.generated`` without
touching ``sys.path``. The output is deterministic for a given grpcio-tools version, which
lets a test regenerate into a temporary directory and compare with the committed files.

Usage: ``uv run python scripts/gen_protos.py [--out DIR] [--proto FILE]``
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "apps" / "endpoints-hello" / "src" / "endpoints_hello"
DEFAULT_PROTO = SAMPLE / "protos" / "genkit_sample.proto"
DEFAULT_OUT = SAMPLE / "generated"
INIT = '"""Generated gRPC stubs of ``protos/{name}``; regenerate, never edit."""\n'


def generate(proto: Path, out: Path) -> list[Path]:
    """Write the stubs of ``proto`` into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    stem = proto.stem
    # The proto directory is the include root, so the descriptor registers the file as
    # "genkit_sample.proto" wherever the checkout lives (the output stays byte-stable).
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={proto.parent}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        proto.name,
    ]
    subprocess.run(cmd, check=True, cwd=proto.parent)  # noqa: S603 - fixed argv, no shell
    grpc_module = out / f"{stem}_pb2_grpc.py"
    text = grpc_module.read_text(encoding="utf-8")
    fixed, count = re.subn(
        rf"^import {stem}_pb2 as ", f"from . import {stem}_pb2 as ", text, flags=re.M
    )
    if count != 1:
        raise RuntimeError(f"expected one 'import {stem}_pb2' line in {grpc_module.name}")
    grpc_module.write_text(fixed, encoding="utf-8")
    init = out / "__init__.py"
    init.write_text(INIT.format(name=proto.name), encoding="utf-8")
    return [init, out / f"{stem}_pb2.py", out / f"{stem}_pb2.pyi", grpc_module]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--proto", type=Path, default=DEFAULT_PROTO, help="the .proto file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in generate(args.proto.resolve(), args.out.resolve()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
