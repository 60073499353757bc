# SPDX-License-Identifier: Apache-2.0
"""Response encoders for ``FlowRoute.grpc_encode``: JSON outputs that a proto carries as text.

Kept free of gRPC and protobuf imports so an app's route table can use them without
paying for the gRPC stack (the app may run with gRPC disabled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson


def json_field(name: str) -> Callable[[Any], dict[str, str]]:
    """An encoder putting the whole output, as compact JSON, into the string field ``name``.

    The text is the REST response body, byte for byte (same serializer), so a gRPC
    client and a REST client parse the same document.
    """

    def encode(output: Any) -> dict[str, str]:
        return {name: orjson.dumps(output).decode()}

    encode.__qualname__ = f"json_field({name!r})"
    return encode
