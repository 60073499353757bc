# SPDX-License-Identifier: Apache-2.0
"""``terraform validate`` of every module under deploy/terraform, with its providers.

Validation needs the providers, so each module is initialised first — in a temporary
copy, which leaves no ``.terraform`` directory or lock file behind in the working tree.
Without terraform this fails with what to install; when the provider registry cannot
be reached, the validation did not run, and this says so (see ``supply.finish``).

Usage: ``python scripts/terraform_validate.py``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from supply import FAILED, NOT_RUN, OK, ROOT, finish

CHECK = "terraform validate"
MODULES = sorted({p.parent for p in (ROOT / "deploy" / "terraform").rglob("*.tf")})
_UNREACHABLE = ("could not connect", "no such host", "failed to query available provider")


def validate(terraform: str, module: Path) -> tuple[int, str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / module.name
        shutil.copytree(module, copy, ignore=shutil.ignore_patterns(".terraform"))

        def terraform_run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(  # noqa: S603 - fixed argv, no shell
                [terraform, *args, "-no-color"],
                cwd=copy,
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=300,
            )

        init = terraform_run("init", "-backend=false", "-input=false")
        if init.returncode != 0:
            out = init.stdout + init.stderr
            if any(marker in out.lower() for marker in _UNREACHABLE):
                return NOT_RUN, "the Terraform provider registry is unreachable from here"
            return FAILED, f"terraform init failed in {module.relative_to(ROOT)}:\n{out}"
        result = terraform_run("validate")
        if result.returncode != 0:
            return FAILED, f"{module.relative_to(ROOT)}:\n{result.stdout}{result.stderr}"
    return OK, ""


def main() -> int:
    terraform = shutil.which("terraform")
    if terraform is None:
        print(
            "terraform not found on PATH: install Terraform 1.5 or newer "
            "(https://developer.hashicorp.com/terraform/install)"
        )
        return FAILED
    for module in MODULES:
        status, detail = validate(terraform, module)
        if status == FAILED:
            print(detail)
        if status != OK:
            return finish(CHECK, status, detail)
        print(f"{CHECK}: {module.relative_to(ROOT)} is valid")
    return OK


if __name__ == "__main__":
    sys.exit(main())
