# SPDX-License-Identifier: Apache-2.0
"""The documentation site builds with ``mkdocs build --strict``, charts included.

Strict mode turns every broken link, missing anchor and missing image into a failure,
so a page that moves or a chart that is not committed breaks the build here first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHARTS = ("throughput.svg", "latency.svg", "inflight.svg")


def test_the_site_builds_strictly_with_every_chart(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    page = (site / "benchmarks" / "index.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert sorted(Path(src).name for src in images) == sorted(CHARTS)
    for src in images:
        assert (site / "benchmarks" / src).resolve().is_file(), src
    for name in ("quickstart", "contract", "security", "operating", "scaling", "deployment"):
        assert (site / name / "index.html").is_file(), name
    assert (site / "architecture" / "index.html").is_file()


def test_the_readme_links_only_to_files_that_exist() -> None:
    """The README points at the docs pages; a renamed page must not leave it dangling."""
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert any(t.startswith("docs/") for t in local)
    missing = [t for t in local if not (REPO / t).exists()]
    assert missing == []
