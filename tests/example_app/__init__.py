# SPDX-License-Identifier: Apache-2.0
"""An app outside the sample, written only against the kit's public API (tests run it)."""
