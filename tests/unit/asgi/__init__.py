# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kit's pure-ASGI middleware (`genkit_endpoints.http.middleware`), one module per
layer. No framework: the apps speak ASGI messages directly, so every assertion is about
what the middleware itself does with the bytes."""
