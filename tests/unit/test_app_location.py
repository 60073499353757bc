# SPDX-License-Identifier: Apache-2.0
"""Worker processes find the app: ``locate`` in the parent, ``load_app`` in the worker.

Each case runs the way a user starts an app — an importable module (``python -m`` or a
console script), a package's ``__main__``, a script run by path — in a fresh
interpreter, because what ``locate`` sees depends on how ``__main__`` was loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genkit_endpoints.serving.app import App, load_app

APP_SOURCE = """\
from genkit_endpoints import App
from genkit_endpoints.serving.app import locate

def routes(ctx):
    raise AssertionError("not built in these tests")

app = App(name="{name}", routes=routes)

if __name__ == "__main__":
    print(locate(app))
"""


def python(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def load_in_fresh_process(target: str, cwd: Path) -> str:
    """The app's name as a worker would load it; the script's main block must not run."""
    code = f"from genkit_endpoints.serving.app import load_app; print(load_app({target!r}).name)"
    return python(["-c", code], cwd)


def test_a_script_run_by_path_is_located_by_its_file(tmp_path: Path) -> None:
    script = tmp_path / "my_app.py"
    script.write_text(APP_SOURCE.format(name="by-path"))
    target = python([str(script)], cwd=tmp_path)
    assert target == f"{script.resolve()}:app"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Printed once (the name), not twice: the worker did not run the script's main block.
    assert load_in_fresh_process(target, cwd=elsewhere) == "by-path"


def test_a_package_main_run_with_dash_m_is_located_by_module_name(tmp_path: Path) -> None:
    pkg = tmp_path / "my_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(APP_SOURCE.format(name="dash-m"))
    target = python(["-m", "my_pkg"], cwd=tmp_path)
    assert target == "my_pkg.__main__:app"
    assert load_in_fresh_process(target, cwd=tmp_path) == "dash-m"


def test_an_app_imported_from_a_module_is_located_in_that_module(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(APP_SOURCE.format(name="imported"))
    launcher = "from genkit_endpoints.serving.app import locate\nimport service\n"
    (tmp_path / "launcher.py").write_text(launcher + "print(locate(service.app))\n")
    target = python(["launcher.py"], cwd=tmp_path)
    assert target == "service:app"
    assert load_in_fresh_process(target, cwd=tmp_path) == "imported"


def test_an_app_held_by_no_module_cannot_be_located(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from genkit_endpoints import App
        from genkit_endpoints.serving.app import locate
        try:
            locate(App(name="nowhere", routes=lambda ctx: None))
        except LookupError as exc:
            print(exc)
        """
    )
    assert "module-level variable" in python(["-c", code], cwd=tmp_path)


def test_load_app_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match=r"not a genkit_endpoints\.App"):
        load_app("genkit_endpoints.serving.app:APP_ENV")
    with pytest.raises(ValueError, match="module:attr"):
        load_app("no-colon-here")
    assert isinstance(load_app("endpoints_hello.app:APP"), App)
