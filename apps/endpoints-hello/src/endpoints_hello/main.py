# SPDX-License-Identifier: Apache-2.0
"""Command line entry point: ``endpoints-hello`` / ``python -m endpoints_hello``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from endpoints_hello.app import APP
from genkit_endpoints import main as serve_main


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main(APP, argv)


if __name__ == "__main__":
    sys.exit(main())
