# SPDX-License-Identifier: Apache-2.0
"""Cache versions computed per flow from what decides its answers.

A cached answer is only as good as the code, prompts and model that made it. The kit
derives a cacheable route's version from exactly those parts of *that* flow: the source
of its function, the Dotprompt files the route names, the model and the model-call
settings. Editing another flow (even a comment in the same file) leaves it alone;
editing this flow, its prompt or the model configuration makes every old entry
unreachable.

What is not covered: helpers and module constants the flow calls or reads are not part
of its source. A flow whose answers hinge on them sets ``version=`` itself.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from genkit_endpoints.compat.genkit import flow_function

__all__ = ["ModelBasis", "VersionError", "compute", "fingerprint", "flow_source", "prompt_text"]


class VersionError(ValueError):
    """A cacheable route's version cannot be computed; the message says what is missing."""


def fingerprint(*parts: str) -> str:
    """A short, stable fingerprint of ``parts`` (order matters): what the computed versions
    are made of, and what an app passes as an explicit ``FlowRoute.version`` when a flow's
    answers hinge on more than its own source."""
    return hashlib.sha256(orjson.dumps(list(parts))).hexdigest()[:32]


class ModelBasis:
    """The model every flow of a table calls, as it enters the cache version.

    ``config`` is the model-call settings (a Pydantic model is dumped to JSON, keys
    sorted, so field order does not matter).
    """

    __slots__ = ("config", "model")

    def __init__(self, model: str, config: BaseModel | str = "") -> None:
        if not model:
            raise ValueError("the model name of the cache version must not be empty")
        if isinstance(config, BaseModel):
            dumped = config.model_dump(mode="json")
            config = orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS).decode()
        self.model = model
        self.config = config


def flow_source(flow: Any) -> str | None:
    """The source text of the function behind ``flow``, or None when it cannot be read.

    Genkit has no public accessor for a flow's function; ``compat.genkit`` reads it. When
    that ever fails the lookup fails loudly: a cacheable route without a readable source
    is refused when its table is built.
    """
    fn = flow_function(flow)
    if fn is None:
        return None
    try:
        return inspect.getsource(inspect.unwrap(fn))
    except (OSError, TypeError):  # built in, made by exec(), or its file is gone
        return None


def prompt_text(prompt_dir: Path, name: str) -> str:
    """The text of the Dotprompt ``<prompt_dir>/<name>.prompt``."""
    path = prompt_dir / f"{name}.prompt"
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise VersionError(f"prompt {name!r} has no file {path}") from exc


def compute(
    label: str,
    flow: Any,
    prompts: Sequence[str],
    *,
    model: ModelBasis | None,
    prompt_dir: Path | None,
) -> str:
    """The version of one cacheable route (``label`` names it in errors)."""
    source = flow_source(flow)
    if source is None or model is None or (prompts and prompt_dir is None):
        missing = [
            "the flow function's source cannot be read" if source is None else "",
            "the table was built without the model (model=)" if model is None else "",
            "it names prompts, the table has no prompt_dir" if prompts and not prompt_dir else "",
        ]
        raise VersionError(
            f"route {label} is cacheable but its cache version cannot be computed: "
            f"{'; '.join(m for m in missing if m)}. Give the route an explicit version=, "
            "or supply what is missing."
        )
    texts = [prompt_text(prompt_dir, name) for name in prompts] if prompt_dir else []
    return fingerprint(source, *texts, model.model, model.config)
