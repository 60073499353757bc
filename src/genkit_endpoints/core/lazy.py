# SPDX-License-Identifier: Apache-2.0
"""Package namespaces that import their modules on first use.

A package whose ``__init__`` imported every module would make each import of one of its
light modules (a config dataclass the settings need) pay for the heavy ones (``limits``,
structlog, gRPC): ``--help`` and a bad flag would load the whole service. Such a package
lists where each public name lives and installs ``lazy_exports``'s pair as its module
``__getattr__`` / ``__dir__`` (PEP 562); type checkers read the same names from an
``if TYPE_CHECKING:`` import block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``homes`` maps each lazily exported
    name to the module that defines it; ``public`` is the package's ``__all__``."""
    namespace = importlib.import_module(package).__dict__
    names = sorted(set(public))

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *names})

    return getattr_, dir_
