# SPDX-License-Identifier: Apache-2.0
"""Prompts built from user text."""

from __future__ import annotations

from genkit import Part

__all__ = ["literal"]


def literal(text: str) -> list[Part]:
    """A prompt that is sent as written.

    Genkit compiles a *string* prompt as a Handlebars template, so user input inside an
    f-string would be template code (``{"name": "{{#each x}}"}`` crashed the flow).
    Parts are passed through verbatim — and skip the per-call template compilation.
    """
    return [Part.from_text(text)]
